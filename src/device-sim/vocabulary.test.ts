// The simulated kernel and the API must speak of the same importer kinds and exporter profiles.
import { describe, expect, it } from 'vitest';
import { ExporterProfile, ImporterKind } from '../crds/index.ts';
import { EXPORTER_PROFILES, IMPORTER_KINDS } from './kernel/index.ts';

describe('shared vocabulary', () => {
  it('lists the same importer kinds in the kernel and the API', () => {
    expect([...IMPORTER_KINDS]).toEqual(ImporterKind.options);
  });
  it('lists the same exporter profiles in the kernel and the API', () => {
    expect([...EXPORTER_PROFILES]).toEqual(ExporterProfile.options);
  });
});
