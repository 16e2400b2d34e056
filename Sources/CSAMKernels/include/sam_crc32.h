#ifndef SAM_CRC32_H
#define SAM_CRC32_H

#include <stddef.h>
#include <stdint.h>

// CRC-32 as zip and zlib compute it (reflected polynomial 0xEDB88320, initial and final value
// ~0). Chains like zlib's crc32(): start with 0, pass the previous result to continue.
// Uses carry-less multiplication where the CPU has it (VPCLMULQDQ on 512-bit registers with
// AVX-512, else PCLMULQDQ), else slicing-by-8 tables.
uint32_t sam_crc32(uint32_t crc, const void *bytes, size_t count);

// The portable slicing-by-8 version alone (the fallback; exposed so tests compare both).
uint32_t sam_crc32_tables(uint32_t crc, const void *bytes, size_t count);

#endif
