/* windows.h: for code written for Windows, which includes <windows.h>. Everything
 * ddm provides of it is declared in mprapi.h. */
#include "mprapi.h"
