"""The kernel under test: run lab tests inside a QEMU guest booted with a chosen kernel.

vlab can only test what the running kernel has. A second kernel is usually on the machine anyway
(Debian's cloud kernel for vlab's QEMU guests), so ``pytest --vlab --vlab-kernel=PATH`` boots it
under QEMU with the host's root filesystem shared read-only over virtio-fs and runs the session's
tests there through pytest-xdist: each xdist worker is a Python inside its own guest, reached
through an execnet ``popen`` gateway whose "python" is :mod:`vlab.kernel.launcher`.

Modules: :mod:`.image` (which kernel, its release and modules; the initramfs), :mod:`.launcher`
(host side: virtiofsd + QEMU, stdio bridged to the guest), :mod:`.guest` (guest side: the worker's
environment, then exec of the real Python), :mod:`.pytest_plugin` (``--vlab-kernel``),
:mod:`.probe` (one program in a guest, for ``vlab doctor --kernel``), :mod:`.matrix`
(``vlab run --kernel A --kernel B``: a test x kernel table).
"""

from __future__ import annotations
