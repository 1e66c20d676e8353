"""tests/lab/nested.py's diagnosis of a guest's oops: an interrupt delivered
twice by QEMU's TCG (Documentation/testing.md, "Known failure modes" 24) is
named from the report CI kept of it, and ordinary reports are not.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import nested  # noqa: E402

# From CI's nested.journey failure on 2026-12-06 (resumed guest, its own
# checkpoint): the timer interrupt entered again on its first instruction.
TAKEN_TWICE = """\
[   51.674353]  ? early_xen_iret_patch+0xc/0xc
[   51.674379]  sysvec_apic_timer_interrupt+0xa/0x90
[   51.674494]  asm_sysvec_apic_timer_interrupt+0x16/0x20
[   51.674559] RIP: 0010:asm_sysvec_apic_timer_interrupt+0x0/0x20
[   51.674570] Code: e9 65 07 00 00 0f 1f 44 00 00 0f 01 ca fc 6a ff e8 25 06 00 00 48 89 c4 48 89 e7 <0f> 01 ca fc
[   51.674603] RSP: 0000:fffffe0000002fd8 EFLAGS: 00000006
[   51.674611] RAX: 00007ffe45fee960 RBX: 00000000000001cf RCX: 0000000000458203
[   51.674645] RIP: 0033:0x430abc
"""

# The same place reached legitimately: interrupts on (cannot be a second
# delivery), or stopped there by an NMI.
INTERRUPTS_ON = TAKEN_TWICE.replace("EFLAGS: 00000006", "EFLAGS: 00000246")
BY_NMI = TAKEN_TWICE.replace("sysvec_apic_timer_interrupt+0xa/0x90", "exc_nmi+0x1a/0x120") \
                    .replace("asm_sysvec_apic_timer_interrupt+0x16/0x20", "asm_exc_nmi+0xbf/0x11b")
# An oops elsewhere, interrupts off.
ELSEWHERE = """\
[   56.894876] RIP: 0010:error_entry+0x10/0x130
[   56.894953] Code: 85 0e fd ff ff 0f 01 f8 e9 06 fd ff ff 66 66 2e 0f 1f 84 00 00 00 00 00 66 90 56 48
[   56.894965] RSP: 0000:fffffe0000002000 EFLAGS: 00000083
"""


def main():
    found = nested.interrupt_taken_twice(TAKEN_TWICE)
    assert found == "asm_sysvec_apic_timer_interrupt", found
    for name, text in (("interrupts on", INTERRUPTS_ON), ("an NMI", BY_NMI), ("elsewhere", ELSEWHERE), ("empty", "")):
        found = nested.interrupt_taken_twice(text)
        assert found is None, f"{name}: named {found}"
    print("interrupt delivered twice: named; interrupts on, an NMI, an oops elsewhere: not")


if __name__ == "__main__":
    main()
