// Each kind of failure maps to the exit code scripts branch on, with one line an operator can act on.
import { describe, expect, it } from 'vitest';
import { InvalidObjectError } from '../crds/index.ts';
import { KubeApiError } from '../kube/index.ts';
import { ConfigError, EXIT, failure, NotFoundError, UsageError } from './errors.ts';

const server = 'the API server at https://10.0.0.1:6443';
const path = '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases';

describe('failure', () => {
  it('maps usage, not found and configuration errors', () => {
    expect(failure(new UsageError('why needs a lease'))).toEqual({
      code: EXIT.usage,
      message: 'why needs a lease',
    });
    expect(failure(new NotFoundError('AcceleratorLease a/b not found'))).toEqual({
      code: 3,
      message: 'AcceleratorLease a/b not found',
    });
    expect(failure(new ConfigError('cannot load a kubeconfig: no cluster')).code).toBe(4);
  });

  it('maps every API failure to 4, saying what went wrong', () => {
    const refused = new KubeApiError('GET', path, 0, undefined, new Error('connect ECONNREFUSED'));
    const forbidden = new KubeApiError('GET', path, 403, {
      reason: 'Forbidden',
      message:
        'acceleratorleases.accel.dmabuf.io is forbidden: User "u" cannot list resource "acceleratorleases"',
    });
    const noCrd = new KubeApiError('GET', path, 404, { message: '404 page not found' });
    const unauthorized = new KubeApiError('GET', path, 401, { message: 'Unauthorized' });
    const broken = new KubeApiError('GET', path, 500, { message: 'etcdserver: leader changed' });
    expect(
      [refused, forbidden, noCrd, unauthorized, broken].map((e) => failure(e, server)),
    ).toEqual([
      { code: 4, message: `cannot reach ${server}: connect ECONNREFUSED` },
      {
        code: 4,
        message:
          'forbidden: acceleratorleases.accel.dmabuf.io is forbidden: User "u" cannot list resource "acceleratorleases"',
      },
      {
        code: 4,
        message: `the accel.dmabuf.io/v1alpha1 API is not served by ${server}: are the CRDs installed? (kubectl apply --server-side -f deploy/crds/)`,
      },
      {
        code: 4,
        message: `unauthorized by ${server}: check the kubeconfig's credentials (Unauthorized)`,
      },
      { code: 4, message: `${server} answered 500 to GET ${path}: etcdserver: leader changed` },
    ]);
    const invalid = new InvalidObjectError('Accelerator x', [
      { path: 'spec.node', message: 'Required' },
    ]);
    expect(failure(invalid)).toEqual({
      code: 4,
      message:
        'the API server returned Accelerator x is invalid: spec.node: Required (do the CRDs match this plugin?)',
    });
  });

  it('keeps anything else to one line with its own code', () => {
    expect(failure(new TypeError('x is undefined\n    at f (a.ts:1)'))).toEqual({
      code: 5,
      message: 'unexpected error: x is undefined',
    });
  });
});
