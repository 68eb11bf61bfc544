/*
 * serving_int8_amx.c with its tile instructions emulated in C (serving_tile.h), exported as serving_gemm_s8_amx_emulated:
 * the tests run the AMX kernel's own code on CPUs without AMX and compare it with the other int8 kernels.
 */
#define SERVING_TILE_EMULATION 1
#include "serving_int8_amx.c"
