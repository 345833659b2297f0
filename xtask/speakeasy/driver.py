#!/usr/bin/env python3
"""The sample driver under speakeasy, a second Windows emulator (Mandiant's, on unicorn): its PE
loader, x64 emulation, pool allocator and I/O manager run DriverEntry, the IRP_MJ_* routines it
registers (CREATE, DEVICE_CONTROL, CLOSE, as speakeasy sends them) and DriverUnload.

Usage: python driver.py DRIVER.sys

What is checked, from every pool call the driver makes:
  * DriverEntry returns STATUS_SUCCESS after its self-test passed, and DriverUnload runs;
  * no run ends in an emulation error;
  * every block the driver allocated is freed exactly once, with the tag it was allocated with;
  * every UNICODE_STRING passed to MmGetSystemRoutineAddress reads the same by its Length and up to
    its NUL (speakeasy's own handler reads up to the NUL).
Exits 1, naming each problem, when any check fails.

Where speakeasy is incomplete, this file stands in, and nowhere else:
  * MmGetSystemRoutineAddress answers NULL for a routine speakeasy does not implement (its own
    answer is a made-up address for any name, which the driver would then call), so the driver
    takes its ExAllocatePoolWithTag fallback as on any kernel without ExAllocatePool2;
  * routines speakeasy does not implement (speakeasy stops a run at the first) get small
    stand-ins: KeReleaseSpinLock, ExAllocatePoolWithQuotaTag, the NPAGED_LOOKASIDE_LIST and SLIST
    routines, IoGetDeviceInterfaces (an empty list, which the driver frees with ExFreePool),
    ZwSetSecurityObject and KeBugCheckEx (a problem, and the run stops).
"""
import collections
import sys

import speakeasy

STATUS_SUCCESS = 0


def tag_text(tag):
    if isinstance(tag, str):
        return tag
    return ''.join(chr(b) if 0x20 <= b < 0x7F else '.' for b in (tag & 0xFFFFFFFF).to_bytes(4, 'little'))


class Pool:
    """Every block the driver allocated, and the problems its frees show."""

    def __init__(self):
        self.blocks = []      # dict(address, tag, size, routine, freed)
        self.live = {}        # address -> index into blocks
        self.problems = []

    def allocated(self, routine, size, tag, address):
        if not address:
            return
        if address in self.live:
            self.problems.append('0x%x handed out twice without a free' % address)
        self.live[address] = len(self.blocks)
        self.blocks.append(dict(address=address, tag=tag_text(tag), size=size, routine=routine, freed=None))

    def freed(self, routine, address, tag):
        index = self.live.pop(address, None)
        if index is None:
            self.problems.append('%s(0x%x): not a live block (a double free, or not the start of one)'
                                 % (routine, address))
            return
        block = self.blocks[index]
        if tag is not None and tag_text(tag) != block['tag']:
            self.problems.append('%s(0x%x, %r): allocated with tag %r' % (routine, address, tag_text(tag),
                                                                         block['tag']))
        block['freed'] = routine


def main():
    path = sys.argv[1]
    pool = Pool()
    lookups = []
    slists = collections.defaultdict(list)

    def allocate_with_tag(emu, api, orig, argv):
        address = orig(argv)
        pool.allocated('ExAllocatePoolWithTag', argv[1], argv[2], address)
        return address

    def free_with_tag(emu, api, orig, argv):
        pool.freed('ExFreePoolWithTag', argv[0], argv[1])
        return orig(argv)

    def free(emu, api, orig, argv):
        pool.freed('ExFreePool', argv[0], None)
        return orig(argv)

    def routine_address(emu, api, orig, argv):
        raw = emu.mem_read(argv[0], 16)
        length = int.from_bytes(raw[0:2], 'little')
        buffer = int.from_bytes(raw[8:16], 'little')
        by_length = emu.mem_read(buffer, length).decode('utf-16le', 'replace')
        to_nul = emu.read_mem_string(buffer, width=2)
        lookups.append(by_length)
        if to_nul != by_length:
            pool.problems.append('MmGetSystemRoutineAddress: %r by its Length, %r up to its NUL'
                                 % (by_length, to_nul))
        _, handler = emu.api.get_export_func_handler('ntoskrnl', by_length)
        return emu.get_proc('ntoskrnl', by_length) if handler else 0

    def release_spin_lock(emu, api, orig, argv):
        emu.set_current_irql(argv[1] & 0xFF)
        return 0

    def allocate_with_quota_tag(emu, api, orig, argv):
        pool_type, size, tag = argv
        # POOL_QUOTA_FAIL_INSTEAD_OF_RAISE (8) is not a pool type; no quota is kept.
        address = emu.pool_alloc(pool_type & ~0x8, size, tag_text(tag))
        pool.allocated('ExAllocatePoolWithQuotaTag', size, tag, address)
        return address

    def initialize_lookaside(emu, api, orig, argv):
        # The x64 NPAGED_LOOKASIDE_LIST fields the driver's inline routines read.
        lookaside, allocate, free_routine, _flags, size, tag, _depth = argv
        write = lambda offset, value, width: emu.mem_write(lookaside + offset, value.to_bytes(width, 'little'))
        emu.mem_write(lookaside, b'\0' * 0x80)
        write(0x10, 4, 2)        # Depth
        write(0x12, 256, 2)      # MaximumDepth
        write(0x24, 0x200, 4)    # Type: NonPagedPoolNx
        write(0x28, tag & 0xFFFFFFFF, 4)
        write(0x2C, size & 0xFFFFFFFF, 4)
        write(0x30, allocate, 8)
        write(0x38, free_routine, 8)
        slists[lookaside] = []
        return 0

    def delete_lookaside(emu, api, orig, argv):
        # The kernel hands each cached entry to the list's Free routine; speakeasy cannot call back
        # into the driver here, so the entries go back as the default Free routine would.
        for entry in slists.pop(argv[0], []):
            pool.freed('ExFreePool (lookaside list deleted)', entry, None)
            emu.mem_free(entry)
        return 0

    def pop(emu, api, orig, argv):
        entries = slists[argv[0]]
        return entries.pop() if entries else 0

    def push(emu, api, orig, argv):
        entries = slists[argv[0]]
        previous = entries[-1] if entries else 0
        entries.append(argv[1])
        return previous

    def depth(emu, api, orig, argv):
        return len(slists[argv[0]])

    def device_interfaces(emu, api, orig, argv):
        list_address = emu.pool_alloc(1, 4, 'kern')
        emu.mem_write(list_address, b'\0' * 4)           # an empty MULTI_SZ
        emu.mem_write(argv[3], list_address.to_bytes(8, 'little'))
        pool.allocated('IoGetDeviceInterfaces', 4, 'kern', list_address)
        return STATUS_SUCCESS

    def success(emu, api, orig, argv):
        return STATUS_SUCCESS

    def bug_check(emu, api, orig, argv):
        pool.problems.append('KeBugCheckEx(0x%x, 0x%x, 0x%x, 0x%x, 0x%x)' % tuple(argv))
        emu.stop()
        return 0

    emulator = speakeasy.Speakeasy()
    for name, hook in (('ExAllocatePoolWithTag', allocate_with_tag), ('ExFreePoolWithTag', free_with_tag),
                       ('ExFreePool', free), ('MmGetSystemRoutineAddress', routine_address)):
        emulator.add_api_hook(hook, 'ntoskrnl', name)
    for name, hook, argc in (('KeReleaseSpinLock', release_spin_lock, 2),
                             ('ExAllocatePoolWithQuotaTag', allocate_with_quota_tag, 3),
                             ('ExInitializeNPagedLookasideList', initialize_lookaside, 7),
                             ('ExDeleteNPagedLookasideList', delete_lookaside, 1),
                             ('ExpInterlockedPopEntrySList', pop, 1),
                             ('ExpInterlockedPushEntrySList', push, 2),
                             ('ExQueryDepthSList', depth, 1),
                             ('IoGetDeviceInterfaces', device_interfaces, 4),
                             ('ZwSetSecurityObject', success, 3),
                             ('KeBugCheckEx', bug_check, 5)):
        emulator.add_api_hook(hook, 'ntoskrnl', name, argc=argc)

    module = emulator.load_module(path)
    # DriverEntry, the IRP_MJ_* routines and DriverUnload only: not the image's exports, which
    # speakeasy would otherwise call with made-up arguments.
    module.get_exports = lambda: []
    emulator.run_module(module, all_entrypoints=True)
    report = emulator.get_report()

    runs = {}
    printed = []
    for entry in report['entry_points']:
        runs[entry['ep_type']] = entry
        error = entry.get('error') or {}
        if error:
            pool.problems.append('%s stopped: %s %s' % (entry['ep_type'], error.get('type'),
                                                        error.get('api_name', error.get('address', ''))))
        for call in entry.get('apis', []):
            if call['api_name'].endswith('DbgPrint'):
                printed.append(call['args'][0].rstrip('\n'))
    entry = runs.get('entry_point')
    if entry is None or int(entry.get('ret_val') or '-1', 16) != STATUS_SUCCESS:
        pool.problems.append('DriverEntry returned %s' % (entry and entry.get('ret_val')))
    if not any('self-test passed' in line for line in printed):
        pool.problems.append('no "self-test passed" line from DriverEntry')
    if 'driver_unload' not in runs:
        pool.problems.append('DriverUnload did not run')
    for block in pool.blocks:
        if block['freed'] is None:
            pool.problems.append('leak: 0x%x, tag %r, %d bytes, from %s' % (block['address'], block['tag'],
                                                                          block['size'], block['routine']))

    for line in printed:
        print('  ' + line)
    print('runs: ' + ', '.join('%s %s' % (name, runs[name].get('ret_val')) for name in runs))
    print('MmGetSystemRoutineAddress: ' + ', '.join(lookups))
    tags = collections.OrderedDict()
    for block in pool.blocks:
        row = tags.setdefault(block['tag'], [0, 0, 0])
        row[0] += 1
        row[1] += 1 if block['freed'] else 0
        row[2] += block['size']
    print('  tag    allocations  frees      bytes')
    for tag, (count, frees, size) in tags.items():
        print('  %-6s %11d %6d %10d' % (tag, count, frees, size))
    if pool.problems:
        for problem in pool.problems:
            print('problem: ' + problem)
        return 1
    print('speakeasy %s: DriverEntry, %s and DriverUnload ran; %d blocks over %d tags, every one freed once '
          'with its own tag' % (report['emu_version'], ', '.join(n for n in runs if n.startswith('irp_mj')),
                                len(pool.blocks), len(tags)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
