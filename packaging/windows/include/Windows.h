/* usearch includes <Windows.h>; mingw-w64's header is windows.h, which a case-sensitive
   file system does not find under the other spelling. Only cross builds from Linux use this. */
#include <windows.h>
