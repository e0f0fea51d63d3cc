/* ProcessPrng for wine 8, whose bcryptprimitives.dll is missing: Rust's standard library
   imports it, and every Windows 10 and 11 has it. Built into the test prefix by
   tests/windows/run.sh; never shipped. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
