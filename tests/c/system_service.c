/* The machine's service found with no setting at all, as a Windows program
 * finds its router service with MprAdminServerConnect(NULL): run with an
 * empty environment, as a user whose role is argv[1] ("status" or
 * "monitor"), while root's service listens on /run/ddm/ddm.sock.
 */
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: system_service status|monitor\n");
        return 2;
    }
    int monitor = strcmp(argv[1], "monitor") == 0;
    DWORD read_calls = monitor ? NO_ERROR : ERROR_ACCESS_DENIED;
    CHECK(getenv("DDM_SOCKET") == NULL);

    MPR_SERVER_HANDLE server = NULL;
    CHECK_EQ(MprAdminServerConnect(NULL, &server), NO_ERROR);
    CHECK(MprAdminIsServiceRunning(NULL));
    LPBYTE buffer = NULL;
    CHECK_EQ(MprAdminServerGetInfo(server, 0, &buffer), NO_ERROR);
    MprAdminBufferFree(buffer);

    buffer = NULL;
    DWORD read = 0, total = 0;
    CHECK_EQ(MprAdminInterfaceEnum(server, 0, &buffer, (DWORD)-1, &read, &total, NULL),
             read_calls);
    if (buffer != NULL)
        MprAdminBufferFree(buffer);

    HANDLE event = CreateEvent(NULL, FALSE, FALSE, NULL);
    CHECK(event != NULL);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, event), read_calls);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, event), read_calls);
    CloseHandle(event);
    MprAdminServerDisconnect(server);
    return check_summary("system_service");
}
