/* The notification loop on real links, and threads that register and wait
 * at the same time. The router namespace holds link "va" (down). */
#define _POSIX_C_SOURCE 200809L /* pthread barriers under -std=c11 */
#include <pthread.h>
#include "check.h"

#define THREADS 8
#define PATIENCE_MS 10000

static MPR_SERVER_HANDLE shared_server;
static pthread_barrier_t registered;

/* The state of "va", or -1 when it is not listed. */
static int state_of_va(void) {
    LPBYTE buffer = NULL;
    DWORD read = 0, total = 0;
    int state = -1;
    char name[MAX_INTERFACE_NAME_LEN + 1];
    if (MprAdminInterfaceEnum(shared_server, 0, &buffer, (DWORD)-1, &read, &total, NULL) != NO_ERROR)
        return -1;
    MPR_INTERFACE_0 *interfaces = (MPR_INTERFACE_0 *)buffer;
    for (DWORD i = 0; i < read; i++) {
        narrow(interfaces[i].wszInterfaceName, name, sizeof name);
        if (strcmp(name, "va") == 0)
            state = (int)interfaces[i].dwConnectionState;
    }
    MprAdminBufferFree(buffer);
    return state;
}

/* Sets va up or down and waits until the service reports it. */
static void settle_va(int up) {
    CHECK_EQ(ip(up ? "link set va up" : "link set va down"), 0);
    int want = up ? ROUTER_IF_STATE_CONNECTED : ROUTER_IF_STATE_DISCONNECTED;
    for (int i = 0; i < PATIENCE_MS / 10 && state_of_va() != want; i++)
        Sleep(10);
    CHECK_EQ(state_of_va(), want);
}

static void notification_loop(void) {
    HANDLE event = CreateEvent(NULL, FALSE, FALSE, NULL);
    CHECK_EQ(MprAdminRegisterConnectionNotification(shared_server, event), NO_ERROR);
    CHECK_EQ(ip("link set va up"), 0);
    CHECK_EQ(WaitForSingleObject(event, PATIENCE_MS), WAIT_OBJECT_0);
    CHECK_EQ(state_of_va(), ROUTER_IF_STATE_CONNECTED);
    CHECK_EQ(ip("link set va down"), 0);
    CHECK_EQ(WaitForSingleObject(event, PATIENCE_MS), WAIT_OBJECT_0);
    CHECK_EQ(state_of_va(), ROUTER_IF_STATE_DISCONNECTED);
    CHECK_EQ(MprAdminDeregisterConnectionNotification(shared_server, event), NO_ERROR);
    settle_va(1);
    CHECK_EQ(WaitForSingleObject(event, 300), WAIT_TIMEOUT); /* silence after deregister */
    settle_va(0);
    CloseHandle(event);
}

struct waiter {
    int own_server;
    DWORD result;
    DWORD registration;
    DWORD last_error_seen;
};

static void *wait_for_change(void *arg) {
    struct waiter *w = arg;
    MPR_SERVER_HANDLE server = shared_server;
    if (w->own_server && MprAdminServerConnect(NULL, &server) != NO_ERROR)
        server = NULL;
    HANDLE event = CreateEvent(NULL, FALSE, FALSE, NULL);
    SetLastError(4242); /* per thread: nobody else sees it */
    w->registration = MprAdminRegisterConnectionNotification(server, event);
    pthread_barrier_wait(&registered);
    w->result = WaitForSingleObject(event, PATIENCE_MS);
    MprAdminDeregisterConnectionNotification(server, event);
    CloseHandle(event);
    if (w->own_server)
        MprAdminServerDisconnect(server);
    w->last_error_seen = GetLastError();
    return NULL;
}

static void threads_register_and_wait(void) {
    pthread_t threads[THREADS];
    struct waiter waiters[THREADS];
    pthread_barrier_init(&registered, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++) {
        waiters[i] = (struct waiter){.own_server = i % 2};
        pthread_create(&threads[i], NULL, wait_for_change, &waiters[i]);
    }
    SetLastError(0);
    pthread_barrier_wait(&registered);
    CHECK_EQ(ip("link set va up"), 0);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ(waiters[i].registration, NO_ERROR);
        CHECK_EQ(waiters[i].result, WAIT_OBJECT_0);
    }
    CHECK_EQ(GetLastError(), 0);
    pthread_barrier_destroy(&registered);
    settle_va(0);
}

static HANDLE shared_manual;

static void *wait_on_shared(void *arg) {
    *(DWORD *)arg = WaitForSingleObject(shared_manual, PATIENCE_MS);
    return NULL;
}

static void a_manual_event_releases_every_thread(void) {
    pthread_t threads[THREADS];
    DWORD results[THREADS];
    shared_manual = CreateEvent(NULL, TRUE, FALSE, NULL);
    CHECK_EQ(MprAdminRegisterConnectionNotification(shared_server, shared_manual), NO_ERROR);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, wait_on_shared, &results[i]);
    CHECK_EQ(ip("link set va up"), 0);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ(results[i], WAIT_OBJECT_0);
    }
    CHECK_EQ(MprAdminDeregisterConnectionNotification(shared_server, shared_manual), NO_ERROR);
    CloseHandle(shared_manual);
    settle_va(0);
}

int main(void) {
    CHECK_EQ(MprAdminServerConnect(NULL, &shared_server), NO_ERROR);
    if (shared_server == NULL)
        return check_summary("notify");
    settle_va(0);
    notification_loop();
    threads_register_and_wait();
    a_manual_event_releases_every_thread();
    MprAdminServerDisconnect(shared_server);
    return check_summary("notify");
}
