/**
 * -drive throttling.* and the legacy aliases (bps=, iops_rd=, group=, ...): mapped onto the
 * drive's BlockBackend limits, with QEMU 7.2's texts (captured from qemu-system-x86_64 -drive).
 */
import { describe, expect, it } from 'vitest';
import { driveToConfig, parseDrive } from '../../src/config/drive.ts';
import { configToLimits } from '../../src/block/throttle/throttle.ts';

const drive = (s: string) => driveToConfig(parseDrive(s));

describe('-drive I/O limits', () => {
  it('maps the aliases onto throttling.* and defaults the group to the drive id', () => {
    const { backend, blockdev } = drive(
      'driver=null-co,if=none,id=d0,bps=1000,iops_rd=3,bps_max=2000,iops_size=512',
    );
    expect(backend.throttle?.group).toBe('d0');
    expect(configToLimits(backend.throttle!.config)).toMatchObject({
      'bps-total': 1000,
      'iops-read': 3,
      'bps-total-max': 2000,
      'bps-total-max-length': 1,
      'iops-size': 512,
    });
    // None of them reaches the node.
    expect(blockdev).toEqual({ driver: 'null-co', 'read-only': false });
  });

  it('takes throttling.group (or group=) and burst lengths', () => {
    const { backend } = drive(
      'file=x,format=raw,group=g1,throttling.iops-total=10,throttling.iops-total-max=20,throttling.iops-total-max-length=3',
    );
    expect(backend.throttle?.group).toBe('g1');
    expect(configToLimits(backend.throttle!.config)).toMatchObject({
      'iops-total': 10,
      'iops-total-max': 20,
      'iops-total-max-length': 3,
    });
  });

  it('has no limits without a rate (a group alone does nothing)', () => {
    expect(drive('file=x,format=raw,throttling.group=x').backend.throttle).toBeUndefined();
  });

  it.each([
    ['bps=1000,throttling.bps-read=5', 'bps/iops/max total values and read/write values cannot be used at the same time'],
    ['bps=abc', "Parameter 'throttling.bps-total' expects a number"],
    ['bps=1k', "Parameter 'throttling.bps-total' expects a number"],
    ['throttling.bps-total-max=1000', 'bps_max/iops_max require corresponding bps/iops values'],
    ['bps=1000,throttling.bps-total=5', "'throttling.bps-total' and its alias 'bps' can't be used at the same time"],
    ['bps=-5', 'bps/iops/max values must be within [0, 1000000000000000]'],
    ['throttling.bps-total=1000,throttling.bps-total-max=2000,throttling.bps-total-max-length=0', 'the burst length cannot be 0'],
    ['read-only=on,readonly=on', "'read-only' and its alias 'readonly' can't be used at the same time"],
  ])('%s → %s', (opts, message) => {
    expect(() => drive(`driver=null-co,if=none,id=d0,${opts}`)).toThrow(message);
  }); // prettier-ignore

  it('leaves bps_wr_max_length to the node, as QEMU does (no such alias)', () => {
    expect(drive('driver=null-co,if=none,id=d0,bps_wr_max_length=5').blockdev).toMatchObject({
      bps_wr_max_length: '5',
    });
  });
});
