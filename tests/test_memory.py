"""avstan.memory: glibc's mmap threshold fixed, so freed large blocks go back to the OS."""

import subprocess
import sys

import pytest

# In a fresh interpreter: free a 4 MiB block (glibc raises its dynamic threshold to 4 MiB),
# then allocate and free a 2 MiB block many times over, with small blocks kept between
# them; print how much the heap (not memory maps) grew meanwhile.
SCRIPT = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    from avstan.memory import fix_mmap_threshold
    assert fix_mmap_threshold()
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().arena
kept = []
for _ in range(50):
    block = libc.malloc(2 << 20)
    ctypes.memset(block, 1, 2 << 20)
    kept.append(libc.malloc(64))
    libc.free(block)
print(libc.mallinfo2().arena - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_fixed_threshold_keeps_large_blocks_off_the_heap():
    def heap_growth(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    # glibc's own rule serves the 2 MiB blocks from the heap, which grows by them; with
    # the threshold fixed at 1 MiB each is a memory map, and the heap does not grow.
    assert heap_growth("dynamic") >= 2 << 20
    assert heap_growth("fixed") < 256 << 10


def test_the_users_own_setting_is_left_alone():
    done = subprocess.run(
        [sys.executable, "-c", "from avstan.memory import fix_mmap_threshold; "
         "print(fix_mmap_threshold())"], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "MALLOC_MMAP_THRESHOLD_": "65536"})
    assert done.stdout.strip() == "False", done.stderr
