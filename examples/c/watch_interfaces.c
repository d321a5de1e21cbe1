/* watch_interfaces: prints which router interfaces connect or disconnect,
 * written as one writes it for Windows: a server handle, an auto-reset
 * event registered for connection notifications, and a loop that waits on
 * it and enumerates the interfaces again. Ctrl-C deregisters and cleans up.
 *
 *   gcc -std=c11 -Iinclude examples/c/watch_interfaces.c -Ltarget/release -lmprapi -o watch_interfaces
 *   LD_LIBRARY_PATH=target/release ./watch_interfaces
 */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */
#include <windows.h>
#include <mprapi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MAX_TRACKED 1024

static volatile sig_atomic_t stop;

static void on_interrupt(int signal) {
    (void)signal;
    stop = 1;
}

static const char *state_name(DWORD state) {
    switch (state) {
    case ROUTER_IF_STATE_UNREACHABLE: return "unreachable";
    case ROUTER_IF_STATE_DISCONNECTED: return "disconnected";
    case ROUTER_IF_STATE_CONNECTING: return "connecting";
    case ROUTER_IF_STATE_CONNECTED: return "connected";
    default: return "unknown";
    }
}

static void print_error(const char *what, DWORD error) {
    LPWSTR text = NULL;
    char ascii[512] = "";
    if (MprAdminGetErrorString(error, &text) == NO_ERROR) {
        size_t i = 0;
        for (; text[i] != 0 && i + 1 < sizeof ascii; i++)
            ascii[i] = text[i] < 128 ? (char)text[i] : '?';
        ascii[i] = 0;
        LocalFree(text);
    }
    fprintf(stderr, "%s: error %u: %s\n", what, (unsigned)error, ascii);
}

/* What we saw last time, by interface handle. */
static struct {
    HANDLE handle;
    DWORD state;
} known[MAX_TRACKED];
static int known_count;

static void enumerate_and_report(MPR_SERVER_HANDLE server, BOOL first) {
    LPBYTE buffer = NULL;
    DWORD read = 0, total = 0, resume = 0;
    DWORD error = MprAdminInterfaceEnum(server, 0, &buffer, (DWORD)-1, &read, &total, &resume);
    if (error != NO_ERROR) {
        print_error("MprAdminInterfaceEnum", error);
        return;
    }
    MPR_INTERFACE_0 *interfaces = (MPR_INTERFACE_0 *)buffer;
    for (DWORD i = 0; i < read; i++) {
        char name[MAX_INTERFACE_NAME_LEN + 1];
        size_t n = 0;
        for (; interfaces[i].wszInterfaceName[n] != 0 && n < MAX_INTERFACE_NAME_LEN; n++)
            name[n] = interfaces[i].wszInterfaceName[n] < 128 ? (char)interfaces[i].wszInterfaceName[n] : '?';
        name[n] = 0;
        int j = 0;
        while (j < known_count && known[j].handle != interfaces[i].hInterface)
            j++;
        if (j == known_count && known_count < MAX_TRACKED) {
            known[known_count].handle = interfaces[i].hInterface;
            known[known_count].state = interfaces[i].dwConnectionState;
            known_count++;
            printf("%s: %s%s\n", name, state_name(interfaces[i].dwConnectionState), first ? "" : " (new)");
        } else if (j < known_count && known[j].state != (DWORD)interfaces[i].dwConnectionState) {
            printf("%s: %s -> %s\n", name, state_name(known[j].state), state_name(interfaces[i].dwConnectionState));
            known[j].state = interfaces[i].dwConnectionState;
        }
    }
    fflush(stdout);
    MprAdminBufferFree(buffer);
}

int main(void) {
    MPR_SERVER_HANDLE server = NULL;
    HANDLE event = NULL;
    DWORD error;
    struct sigaction action;

    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    error = MprAdminServerConnect(NULL, &server);
    if (error != NO_ERROR) {
        print_error("MprAdminServerConnect", error);
        return 1;
    }
    event = CreateEvent(NULL, FALSE, FALSE, NULL);
    if (event == NULL) {
        print_error("CreateEvent", GetLastError());
        MprAdminServerDisconnect(server);
        return 1;
    }
    error = MprAdminRegisterConnectionNotification(server, event);
    if (error != NO_ERROR) {
        print_error("MprAdminRegisterConnectionNotification", error);
        CloseHandle(event);
        MprAdminServerDisconnect(server);
        return 1;
    }

    enumerate_and_report(server, TRUE);
    while (!stop) {
        DWORD wait = WaitForSingleObject(event, 500);
        if (wait == WAIT_OBJECT_0)
            enumerate_and_report(server, FALSE);
        else if (wait == WAIT_FAILED) {
            print_error("WaitForSingleObject", GetLastError());
            break;
        }
    }

    error = MprAdminDeregisterConnectionNotification(server, event);
    if (error != NO_ERROR)
        print_error("MprAdminDeregisterConnectionNotification", error);
    CloseHandle(event);
    MprAdminServerDisconnect(server);
    return error == NO_ERROR ? 0 : 1;
}
