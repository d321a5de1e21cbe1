/* A program with functions of its own named as Win32's (Sleep with another
 * signature, GetLastError), as a test framework or Wine has: it links
 * against libmprapi, its calls reach its own functions, and the library's
 * event calls work under their ddm_ names. Needs no service. */
#define DDM_NO_WIN32_NAMES
#include "check.h"

static int own_sleeps;

/* Not the Win32 signature: seconds, and a result. */
int Sleep(unsigned int seconds);
int Sleep(unsigned int seconds) {
    own_sleeps++;
    return (int)seconds;
}

long GetLastError(void);
long GetLastError(void) {
    return -42;
}

int main(void) {
    CHECK_EQ(Sleep(3), 3);
    CHECK_EQ(own_sleeps, 1);
    CHECK(GetLastError() == -42);

    HANDLE event = ddm_CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK(event != NULL);
    CHECK_EQ(ddm_WaitForSingleObject(event, 0), WAIT_TIMEOUT);
    CHECK(ddm_SetEvent(event));
    CHECK_EQ(ddm_WaitForSingleObject(event, 0), WAIT_OBJECT_0);
    ddm_Sleep(1);
    CHECK_EQ(own_sleeps, 1);
    CHECK(ddm_CloseHandle(event));
    CHECK_EQ(ddm_WaitForSingleObject(event, 0), WAIT_FAILED);
    CHECK_EQ(ddm_GetLastError(), ERROR_INVALID_HANDLE);
    ddm_SetLastError(0);
    CHECK_EQ(ddm_GetLastError(), 0);

    LPWSTR text = NULL;
    CHECK_EQ(MprAdminGetErrorString(ERROR_NO_SUCH_INTERFACE, &text), NO_ERROR);
    CHECK(text != NULL && ddm_LocalFree(text) == NULL);
    return check_summary("own_win32_names");
}
