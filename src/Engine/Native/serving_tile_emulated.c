/*
 * The AMX kernels (serving_amx.c, serving_int8_amx.c) with their tile instructions emulated in C (serving_tile.h), exported
 * as serving_amx_linear_emulated and serving_gemm_s8_amx_emulated: the tests run the kernels' own code on CPUs without
 * AMX and compare it with the other kernels and with exact sums.
 */
#define SERVING_TILE_EMULATION 1
#include "serving_amx.c"
#include "serving_int8_amx.c"

/* Faults the emulation counted where the hardware would have raised #UD or #GP (serving_tile.h), and the first one. */
long serving_tile_emulated_faults(void) { return atomic_load(&serving_tile_faults); }
const char *serving_tile_emulated_first_fault(void) { return serving_tile_first_fault; }
