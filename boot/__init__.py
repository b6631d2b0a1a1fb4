"""The multi-kernel boot emulator.

images (kernel image headers), grubcfg (grub.cfg and the mksim_kernel plans), mkimage (small real
images), loader (placing images, modules, boot information), bootinfo (Multiboot and Linux boot data),
kexec (kexec_load rules and the purgatory), smp (INIT-SIPI-SIPI and the trampoline), flows (GRUB,
kexec and two-stage trampoline boots as core programs), timeline (boot steps and Chrome traces),
bootrun / plans / bench (running plans, generated plans, the boot benchmark).
"""
