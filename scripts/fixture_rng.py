"""The seeded draws graft's tests use, for fixture scripts: mulberry32 bit-for-bit as rng() in
src/rng.ts, and rounding to float32."""
import struct

M32 = 0xFFFFFFFF


def mulberry32(seed):
    """Uniform draws in [0, 1), bit-for-bit as rng() in src/rng.ts."""
    a = seed & M32

    def imul(x, y):
        return (x * y) & M32

    def draw():
        nonlocal a
        a = (a + 0x6D2B79F5) & M32
        t = imul(a ^ (a >> 15), a | 1)
        t = (t ^ ((t + imul(t ^ (t >> 7), t | 61)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    return draw


def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]
