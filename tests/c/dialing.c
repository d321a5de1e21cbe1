/* Dialing through the C library, as a Windows program would: a manual
 * demand-dial interface named argv[1] whose tunnel can connect.
 * MprAdminInterfaceGetHandle, the three MprAdminInterfaceConnect modes,
 * MprAdminInterfaceDisconnect, MprAdminInterfaceSetInfo, and their errors.
 * With argv[2] "monitor": a caller who may look but not dial.
 */
#include "check.h"

static MPR_INTERFACE_0 info(MPR_SERVER_HANDLE server, HANDLE interface) {
    LPBYTE buffer = NULL;
    MPR_INTERFACE_0 copy;
    memset(&copy, 0, sizeof copy);
    CHECK_EQ(MprAdminInterfaceGetInfo(server, interface, 0, &buffer), NO_ERROR);
    if (buffer != NULL) {
        copy = *(MPR_INTERFACE_0 *)buffer;
        MprAdminBufferFree(buffer);
    }
    return copy;
}

static void wait_for_state(MPR_SERVER_HANDLE server, HANDLE interface, DWORD state) {
    for (int i = 0; i < 1000 && info(server, interface).dwConnectionState != state; i++)
        Sleep(10);
    CHECK_EQ(info(server, interface).dwConnectionState, state);
}

static WCHAR *wide(const char *text) {
    static WCHAR buffer[128];
    size_t i = 0;
    for (; text[i] != 0 && i + 1 < 128; i++)
        buffer[i] = (WCHAR)text[i];
    buffer[i] = 0;
    return buffer;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dialing NAME [monitor]\n");
        return 2;
    }
    MPR_SERVER_HANDLE server = NULL;
    CHECK_EQ(MprAdminServerConnect(NULL, &server), NO_ERROR);

    HANDLE interface = NULL;
    CHECK_EQ(MprAdminInterfaceGetHandle(server, NULL, &interface, FALSE), RPC_X_NULL_REF_POINTER);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, wide("no-such-interface"), &interface, FALSE),
             ERROR_NO_SUCH_INTERFACE);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, wide(argv[1]), &interface, FALSE), NO_ERROR);
    MPR_INTERFACE_0 start = info(server, interface);
    CHECK_EQ(start.dwIfType, ROUTER_IF_TYPE_FULL_ROUTER);
    CHECK_EQ(start.dwConnectionState, ROUTER_IF_STATE_DISCONNECTED);
    CHECK(start.fEnabled);

    if (argc > 2 && strcmp(argv[2], "monitor") == 0) {
        CHECK_EQ(MprAdminInterfaceConnect(server, interface, NULL, TRUE), ERROR_ACCESS_DENIED);
        CHECK_EQ(MprAdminInterfaceDisconnect(server, interface), ERROR_ACCESS_DENIED);
        CHECK_EQ(MprAdminInterfaceSetInfo(server, interface, 0, (LPBYTE)&start), ERROR_ACCESS_DENIED);
        MprAdminServerDisconnect(server);
        return check_summary("dialing monitor");
    }

    /* hEvent: PENDING, then the event when the attempt completes. */
    HANDLE done = CreateEvent(NULL, TRUE, FALSE, NULL);
    CHECK_EQ(MprAdminInterfaceConnect(server, interface, done, FALSE), PENDING);
    CHECK_EQ(WaitForSingleObject(done, 10000), WAIT_OBJECT_0);
    CHECK_EQ(info(server, interface).dwConnectionState, ROUTER_IF_STATE_CONNECTED);
    CHECK_EQ(MprAdminInterfaceConnect(server, interface, NULL, FALSE), NO_ERROR);

    /* Disconnect: dwLastError says the administrator did it. */
    CHECK_EQ(MprAdminInterfaceDisconnect(server, interface), NO_ERROR);
    MPR_INTERFACE_0 down = info(server, interface);
    CHECK_EQ(down.dwConnectionState, ROUTER_IF_STATE_DISCONNECTED);
    CHECK_EQ(down.dwLastError, ERROR_INTERFACE_DISCONNECTED);
    CHECK_EQ(MprAdminInterfaceDisconnect(server, interface), ERROR_INTERFACE_NOT_CONNECTED);

    /* Synchronous: the attempt's own result. */
    CHECK_EQ(MprAdminInterfaceConnect(server, interface, NULL, TRUE), NO_ERROR);
    CHECK_EQ(info(server, interface).dwConnectionState, ROUTER_IF_STATE_CONNECTED);
    CHECK_EQ(MprAdminInterfaceDisconnect(server, interface), NO_ERROR);

    /* Neither: PENDING, connected later. */
    CHECK_EQ(MprAdminInterfaceConnect(server, interface, NULL, FALSE), PENDING);
    wait_for_state(server, interface, ROUTER_IF_STATE_CONNECTED);

    /* fEnabled FALSE hangs up and refuses Connect; other levels are not
     * supported. */
    MPR_INTERFACE_0 settings = info(server, interface);
    settings.fEnabled = FALSE;
    CHECK_EQ(MprAdminInterfaceSetInfo(server, interface, 1, (LPBYTE)&settings), ERROR_NOT_SUPPORTED);
    CHECK_EQ(MprAdminInterfaceSetInfo(server, interface, 0, (LPBYTE)&settings), NO_ERROR);
    MPR_INTERFACE_0 disabled = info(server, interface);
    CHECK(!disabled.fEnabled);
    CHECK_EQ(disabled.dwConnectionState, ROUTER_IF_STATE_DISCONNECTED);
    CHECK(disabled.fUnReachabilityReasons & MPR_INTERFACE_ADMIN_DISABLED);
    CHECK_EQ(MprAdminInterfaceConnect(server, interface, NULL, TRUE), ERROR_INTERFACE_DISABLED);
    settings.fEnabled = TRUE;
    CHECK_EQ(MprAdminInterfaceSetInfo(server, interface, 0, (LPBYTE)&settings), NO_ERROR);
    CHECK(info(server, interface).fEnabled);

    /* Handles that are not. */
    HANDLE bogus = (HANDLE)(uintptr_t)0x7fffffff;
    CHECK_EQ(MprAdminInterfaceConnect(server, bogus, NULL, FALSE), ERROR_INVALID_HANDLE);
    CHECK_EQ(MprAdminInterfaceDisconnect(server, bogus), ERROR_INVALID_HANDLE);
    CHECK_EQ(MprAdminInterfaceSetInfo(server, bogus, 0, (LPBYTE)&settings), ERROR_INVALID_HANDLE);
    CHECK_EQ(MprAdminInterfaceConnect(NULL, interface, NULL, FALSE), RPC_S_INVALID_BINDING);
    CHECK_EQ(MprAdminInterfaceDisconnect(NULL, interface), RPC_S_INVALID_BINDING);

    CloseHandle(done);
    MprAdminServerDisconnect(server);
    return check_summary("dialing");
}
