// The scan command's flags, apart from the command so that its --help can be checked without
// running a scan.
import { flag } from '../../kube/flags.ts';

export const SCAN_FLAGS = {
  root: flag.string('where proc and sys are found', '/'),
  exporter: flag.list('exp_name of the buffers to report (repeatable, or comma-separated)', 1),
  device: flag.list('device node whose holders to report, e.g. /dev/accel/accel0 (repeatable)'),
  rdma: flag.boolean('also read the RDMA MR table (rdma resource show mr -j)'),
  output: { ...flag.oneOf('output format', ['text', 'json'] as const, 'text'), short: 'o' },
};
