// <immintrin.h> without GCC 12's false -Wuninitialized / -Wmaybe-uninitialized warnings
// from inside its AVX-512 headers (they would fail the -Werror build in every file that
// uses _mm512_reduce_* or the 256-bit extracts).
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
