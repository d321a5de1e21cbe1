/* Every call of mprapi.h and every documented error, against a running
 * service whose router namespace holds link "va" (down).
 *
 *   api             the caller is admin and the DDM runs
 *   api stopped     the DDM was stopped: calls that need it give 903
 *   api status      the caller has the status role only: 5
 *   api denied      the caller has no role at all: 5 at connect
 *   api absent      no service listens: RPC_S_UNKNOWN_IF at connect
 */
#include <poll.h>
#include <stdlib.h>
#include "check.h"

static const WCHAR far_away[] = u"router.example:no-port";
static const WCHAR empty[] = u"";

static void error_strings(void) {
    LPWSTR text = NULL;
    char ascii[256];
    CHECK_EQ(MprAdminGetErrorString(ERROR_DDM_NOT_RUNNING, &text), NO_ERROR);
    narrow(text, ascii, sizeof ascii);
    CHECK(strcmp(ascii, "The Demand-dial Interface Manager is not running.") == 0);
    CHECK(LocalFree(text) == NULL);
    CHECK_EQ(MprAdminGetErrorString(ERROR_ACCESS_DENIED, &text), NO_ERROR);
    LocalFree(text);
    text = NULL;
    CHECK_EQ(MprAdminGetErrorString(947, &text), ERROR_MR_MID_NOT_FOUND);
    CHECK(text == NULL);
    CHECK_EQ(MprAdminGetErrorString(ERROR_DDM_NOT_RUNNING, NULL), ERROR_INVALID_PARAMETER);
}

static void connecting(void) {
    MPR_SERVER_HANDLE server = NULL;
    CHECK_EQ(MprAdminServerConnect(NULL, NULL), RPC_S_INVALID_BINDING);
    /* A name is a remote router over TLS (tests/integration/remote.rs);
     * one that is not a name[:port] is refused before any network. */
    CHECK_EQ(MprAdminServerConnect((LPWSTR)far_away, &server), RPC_S_INVALID_BINDING);
    CHECK(server == NULL);
    CHECK_EQ(MprAdminServerConnect((LPWSTR)empty, &server), NO_ERROR);
    CHECK(server != NULL);
    MprAdminServerDisconnect(server);
    /* A disconnected handle is stale: an error, not a crash. */
    LPBYTE buffer = NULL;
    CHECK_EQ(MprAdminServerGetInfo(server, 0, &buffer), RPC_S_INVALID_BINDING);
    MprAdminServerDisconnect(server); /* twice: harmless */
    MprAdminServerDisconnect(NULL);
}

static void server_info(MPR_SERVER_HANDLE server, BOOL lan_only) {
    LPBYTE buffer = NULL;
    CHECK_EQ(MprAdminServerGetInfo(server, 0, &buffer), NO_ERROR);
    if (buffer != NULL) {
        MPR_SERVER_0 *info = (MPR_SERVER_0 *)buffer;
        CHECK_EQ(info->fLanOnlyMode, lan_only);
        CHECK_EQ(info->dwTotalPorts, 0);
        CHECK_EQ(MprAdminBufferFree(buffer), NO_ERROR);
    }
    CHECK_EQ(MprAdminServerGetInfo(server, 1, &buffer), ERROR_NOT_SUPPORTED);
    CHECK_EQ(MprAdminServerGetInfo(server, 0, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminServerGetInfo(NULL, 0, &buffer), RPC_S_INVALID_BINDING);
    CHECK_EQ(MprAdminServerGetInfo((MPR_SERVER_HANDLE)0x1234567, 0, &buffer), RPC_S_INVALID_BINDING);
    CHECK_EQ(MprAdminIsServiceRunning(NULL), !lan_only);
}

/* Finds "va" with a full enumeration; returns its hInterface. */
static HANDLE enumerate(MPR_SERVER_HANDLE server) {
    LPBYTE buffer = NULL;
    DWORD read = 0, total = 0, resume = 0;
    HANDLE va = NULL;
    char name[MAX_INTERFACE_NAME_LEN + 1];
    CHECK_EQ(MprAdminInterfaceEnum(server, 0, &buffer, (DWORD)-1, &read, &total, &resume), NO_ERROR);
    CHECK(read >= 2);
    CHECK_EQ(read, total);
    MPR_INTERFACE_0 *interfaces = (MPR_INTERFACE_0 *)buffer;
    for (DWORD i = 0; i < read; i++) {
        narrow(interfaces[i].wszInterfaceName, name, sizeof name);
        if (strcmp(name, "va") == 0) {
            va = interfaces[i].hInterface;
            CHECK_EQ(interfaces[i].dwIfType, ROUTER_IF_TYPE_DEDICATED);
            CHECK_EQ(interfaces[i].dwConnectionState, ROUTER_IF_STATE_DISCONNECTED);
            CHECK_EQ(interfaces[i].fUnReachabilityReasons, MPR_INTERFACE_ADMIN_DISABLED);
            CHECK_EQ(interfaces[i].fEnabled, FALSE);
        }
    }
    CHECK(va != NULL);
    MprAdminBufferFree(buffer);

    /* One entry a page: ERROR_MORE_DATA and a resume handle each time. */
    DWORD pages = 0, seen = 0;
    DWORD status;
    resume = 0;
    do {
        status = MprAdminInterfaceEnum(server, 0, &buffer, sizeof(MPR_INTERFACE_0), &read, &total, &resume);
        CHECK(status == NO_ERROR || status == ERROR_MORE_DATA);
        CHECK_EQ(read, 1);
        CHECK(status == NO_ERROR || resume != 0);
        seen += read;
        pages++;
        MprAdminBufferFree(buffer);
    } while (status == ERROR_MORE_DATA && pages < 100);
    CHECK_EQ(seen, total);
    CHECK_EQ(resume, 0);

    CHECK_EQ(MprAdminInterfaceEnum(server, 1, &buffer, (DWORD)-1, &read, &total, &resume), ERROR_NOT_SUPPORTED);
    CHECK_EQ(MprAdminInterfaceEnum(server, 0, NULL, (DWORD)-1, &read, &total, &resume), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminInterfaceEnum(NULL, 0, &buffer, (DWORD)-1, &read, &total, &resume), RPC_S_INVALID_BINDING);
    return va;
}

static void interface_info(MPR_SERVER_HANDLE server, HANDLE va) {
    LPBYTE buffer = NULL;
    char name[MAX_INTERFACE_NAME_LEN + 1];
    CHECK_EQ(MprAdminInterfaceGetInfo(server, va, 0, &buffer), NO_ERROR);
    if (buffer != NULL) {
        MPR_INTERFACE_0 *info = (MPR_INTERFACE_0 *)buffer;
        narrow(info->wszInterfaceName, name, sizeof name);
        CHECK(strcmp(name, "va") == 0);
        CHECK(info->hInterface == va);
        MprAdminBufferFree(buffer);
    }
    CHECK_EQ(MprAdminInterfaceGetInfo(server, (HANDLE)999999, 0, &buffer), ERROR_INVALID_HANDLE);

    HANDLE found = NULL;
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"va", &found, FALSE), NO_ERROR);
    CHECK(found == va);
    found = NULL;
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"va", &found, TRUE), NO_ERROR);
    CHECK(found == va);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"VA", &found, FALSE), ERROR_NO_SUCH_INTERFACE);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"no-such", &found, FALSE), ERROR_NO_SUCH_INTERFACE);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, NULL, &found, FALSE), RPC_X_NULL_REF_POINTER);
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"va", NULL, FALSE), RPC_X_NULL_REF_POINTER);
    CHECK_EQ(MprAdminInterfaceGetHandle(NULL, (LPWSTR)u"va", &found, FALSE), RPC_S_INVALID_BINDING);
    CHECK_EQ(MprAdminInterfaceGetHandle((MPR_SERVER_HANDLE)0x1234567, (LPWSTR)u"va", &found, FALSE),
             RPC_S_INVALID_BINDING);
    CHECK_EQ(MprAdminInterfaceGetInfo(server, va, 1, &buffer), ERROR_NOT_SUPPORTED);
    CHECK_EQ(MprAdminInterfaceGetInfo(server, va, 0, NULL), ERROR_INVALID_PARAMETER);
}

static void events(void) {
    HANDLE automatic = CreateEvent(NULL, FALSE, FALSE, NULL);
    HANDLE manual = CreateEvent(NULL, TRUE, TRUE, NULL);
    CHECK(automatic != NULL && manual != NULL);
    CHECK_EQ(WaitForSingleObject(automatic, 0), WAIT_TIMEOUT);
    CHECK(SetEvent(automatic));
    CHECK_EQ(WaitForSingleObject(automatic, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(automatic, 10), WAIT_TIMEOUT);
    CHECK_EQ(WaitForSingleObject(manual, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(manual, 0), WAIT_OBJECT_0);
    CHECK(ResetEvent(manual));
    CHECK_EQ(WaitForSingleObject(manual, 10), WAIT_TIMEOUT);

    HANDLE both[2] = {automatic, manual};
    SetEvent(manual);
    CHECK_EQ(WaitForMultipleObjects(2, both, FALSE, 0), WAIT_OBJECT_0 + 1);
    CHECK_EQ(WaitForMultipleObjects(2, both, TRUE, 10), WAIT_TIMEOUT);
    SetEvent(automatic);
    CHECK_EQ(WaitForMultipleObjects(2, both, TRUE, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(automatic, 0), WAIT_TIMEOUT);
    CHECK_EQ(WaitForMultipleObjects(0, both, FALSE, 0), WAIT_FAILED);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS + 1, both, FALSE, 0), WAIT_FAILED);
    CHECK_EQ(WaitForMultipleObjects(1, NULL, FALSE, 0), WAIT_FAILED);

    /* The descriptor polls readable exactly while signaled. */
    int fd = MprEventGetFd(manual);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 1);
    ResetEvent(manual);
    CHECK_EQ(poll(&p, 1, 0), 0);

    CHECK(CreateEventW(NULL, FALSE, FALSE, u"named") == NULL);
    CHECK_EQ(GetLastError(), ERROR_NOT_SUPPORTED);
    CHECK(CloseHandle(automatic));
    CHECK(CloseHandle(manual));
}

static void handle_misuse(MPR_SERVER_HANDLE server) {
    HANDLE event = CreateEvent(NULL, FALSE, FALSE, NULL);
    CHECK(CloseHandle(event));
    SetLastError(0);
    CHECK(!CloseHandle(event));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK_EQ(WaitForSingleObject(event, 0), WAIT_FAILED);
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(!SetEvent(event));
    CHECK(!ResetEvent(NULL));
    CHECK(!SetEvent((HANDLE)0xdeadbeef));
    CHECK_EQ(WaitForSingleObject((HANDLE)0x12345678, 0), WAIT_FAILED);
    CHECK(!SetEvent(server)); /* a server handle is not an event */
    CHECK(!CloseHandle(server));
    CHECK_EQ(MprEventGetFd(NULL), -1);
    /* An event handle is not a server handle. */
    HANDLE live = CreateEvent(NULL, FALSE, FALSE, NULL);
    LPBYTE buffer = NULL;
    CHECK_EQ(MprAdminServerGetInfo(live, 0, &buffer), RPC_S_INVALID_BINDING);

    CHECK_EQ(MprAdminRegisterConnectionNotification(server, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, event), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, (HANDLE)0xdeadbeef), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, live), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, live), NO_ERROR);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, live), NO_ERROR); /* one registration */
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, live), NO_ERROR);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, live), ERROR_INVALID_PARAMETER);
    CHECK_EQ(MprAdminRegisterConnectionNotification(NULL, live), RPC_S_INVALID_BINDING);
    CloseHandle(live);
}

/* The per-handle registration limit (256 by default) gives 1816. */
static void quota(MPR_SERVER_HANDLE server) {
    enum { LIMIT = 256 };
    static HANDLE events[LIMIT + 1];
    for (int i = 0; i <= LIMIT; i++)
        events[i] = CreateEvent(NULL, FALSE, FALSE, NULL);
    int registered = 0;
    for (int i = 0; i < LIMIT; i++)
        registered += MprAdminRegisterConnectionNotification(server, events[i]) == NO_ERROR;
    CHECK_EQ(registered, LIMIT);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, events[LIMIT]), ERROR_NOT_ENOUGH_QUOTA);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, events[0]), NO_ERROR);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, events[LIMIT]), NO_ERROR);
    for (int i = 0; i <= LIMIT; i++) {
        MprAdminDeregisterConnectionNotification(server, events[i]);
        CloseHandle(events[i]);
    }
}

/* The router the checks run against: $DDM_TEST_SERVER (a remote one, over
 * TLS), else the local service (NULL). */
static WCHAR target_name[256];
static LPWSTR target(void) {
    const char *name = getenv("DDM_TEST_SERVER");
    if (name == NULL || *name == 0)
        return NULL;
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof target_name / sizeof target_name[0]; i++)
        target_name[i] = (WCHAR)name[i];
    target_name[i] = 0;
    return target_name;
}

static void cannot_connect(DWORD expected) {
    MPR_SERVER_HANDLE server = NULL;
    CHECK_EQ(MprAdminServerConnect(target(), &server), expected);
    CHECK(server == NULL);
    CHECK_EQ(MprAdminIsServiceRunning(target()), FALSE);
}

/* Server info still answers (LAN-only while the DDM is stopped); every
 * call that needs the DDM, or more than the status role, gets `refusal`. */
static void ddm_calls_refused(MPR_SERVER_HANDLE server, BOOL lan_only, DWORD refusal) {
    LPBYTE buffer = NULL;
    DWORD read, total, resume = 0;
    HANDLE event = CreateEvent(NULL, FALSE, FALSE, NULL);
    server_info(server, lan_only);
    CHECK_EQ(MprAdminInterfaceEnum(server, 0, &buffer, (DWORD)-1, &read, &total, &resume), refusal);
    HANDLE found = NULL;
    CHECK_EQ(MprAdminInterfaceGetHandle(server, (LPWSTR)u"va", &found, FALSE), refusal);
    CHECK(found == NULL);
    CHECK_EQ(MprAdminRegisterConnectionNotification(server, event), refusal);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(server, event), refusal);
    CloseHandle(event);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    MPR_SERVER_HANDLE server = NULL;
    if (strcmp(mode, "absent") == 0 || strcmp(mode, "denied") == 0) {
        cannot_connect(strcmp(mode, "absent") == 0 ? RPC_S_UNKNOWN_IF : ERROR_ACCESS_DENIED);
        return check_summary("api");
    }
    CHECK_EQ(MprAdminServerConnect(target(), &server), NO_ERROR);
    if (server == NULL)
        return check_summary("api");
    if (strcmp(mode, "stopped") == 0) {
        ddm_calls_refused(server, TRUE, ERROR_DDM_NOT_RUNNING);
    } else if (strcmp(mode, "status") == 0) {
        ddm_calls_refused(server, FALSE, ERROR_ACCESS_DENIED);
    } else {
        error_strings();
        connecting();
        server_info(server, FALSE);
        interface_info(server, enumerate(server));
        events();
        handle_misuse(server);
        quota(server);
    }
    MprAdminServerDisconnect(server);
    return check_summary("api");
}
