"""One gzip member inflated with libdeflate's `gzip_decompress_ex`, which says how many input bytes the member
took: the only entry point that proves in one pass both what a member inflates to and where it ends. The Python
binding (`deflate`) does not expose it, so it is called in the binding's own library (the pinned libdeflate the
layer is compressed with), through ctypes, which lets go of the GIL for the call as the binding does."""

import ctypes
import threading

import deflate
import deflate._deflate

_SUCCESS = 0
_lib = ctypes.CDLL(deflate._deflate.__file__)
_lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
_lib.libdeflate_alloc_decompressor.argtypes = []
_lib.libdeflate_free_decompressor.restype = None
_lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
_lib.libdeflate_gzip_decompress_ex.restype = ctypes.c_int
_lib.libdeflate_gzip_decompress_ex.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t),
]  # fmt: skip


class _Decompressor:
    """One thread's decompressor (libdeflate's are not shared between threads): freed when the thread ends and
    its thread-local values go, or at exit."""

    def __init__(self) -> None:
        self.handle = _lib.libdeflate_alloc_decompressor()
        if not self.handle:
            raise MemoryError("libdeflate could not allocate a decompressor")

    def __del__(self, free: "ctypes._NamedFuncPointer" = _lib.libdeflate_free_decompressor) -> None:
        free(self.handle)  # bound at definition: at exit, the module's names may be gone first


_local = threading.local()


def _decompressor() -> _Decompressor:
    found: _Decompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = _Decompressor()
    return found


def one_member(member: bytes, size: int) -> bytearray | None:
    """What `member` inflates to when it is one whole gzip member (its CRC-32 and length checked, as libdeflate
    checks them) of at most `size` bytes taking every byte of `member`; else None."""
    out = bytearray(size or 1)
    took, gave = ctypes.c_size_t(), ctypes.c_size_t()
    buffer = (ctypes.c_char * len(out)).from_buffer(out)
    result = _lib.libdeflate_gzip_decompress_ex(
        _decompressor().handle, member, len(member), buffer, len(out), ctypes.byref(took), ctypes.byref(gave)
    )
    del buffer  # the bytearray can be resized again
    if result != _SUCCESS or took.value != len(member) or gave.value > size:
        return None
    del out[gave.value :]
    return out
