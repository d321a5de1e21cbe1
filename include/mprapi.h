/*
 * mprapi.h: the Windows router administration API, for ddm on Linux.
 *
 * The calls, types, structures and error numbers of the Windows mprapi.h
 * that a program uses to follow interface connections, so that code written
 * for Windows builds here with few changes:
 *
 *     gcc -Iinclude prog.c -Ltarget/release -lmprapi
 *
 * Strings are UTF-16 (WCHAR is char16_t). Structures have the Windows x64
 * layout. Buffers returned by the library are freed with MprAdminBufferFree,
 * error strings with LocalFree. Handles are checked: NULL, closed, stale or
 * forged ones return the documented error, never undefined behaviour. Every
 * function may be called from several threads at once.
 *
 * The local service is reached at $DDM_SOCKET, else at the default socket
 * (/run/ddm/ddm.sock for root).
 */
#ifndef DDM_MPRAPI_H
#define DDM_MPRAPI_H

#include <stdint.h>
#ifndef __cplusplus
#include <uchar.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- windows.h basics ------------------------------------------------ */

typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef unsigned int UINT;
typedef int BOOL;
typedef char CHAR;
typedef uint8_t BYTE;
typedef void *HANDLE;
typedef HANDLE HLOCAL;
typedef char16_t WCHAR;
typedef WCHAR *LPWSTR;
typedef const WCHAR *LPCWSTR;
typedef BYTE *LPBYTE;
typedef DWORD *LPDWORD;
typedef void *LPVOID;
typedef void *PVOID;
typedef void *LPSECURITY_ATTRIBUTES;
#ifndef VOID
#define VOID void
#endif
#ifndef WINAPI
#define WINAPI
#endif
#ifndef APIENTRY
#define APIENTRY
#endif
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INFINITE                                 0xFFFFFFFF
#define WAIT_OBJECT_0                            0
#define WAIT_TIMEOUT                             258
#define WAIT_FAILED                              ((DWORD)0xFFFFFFFF)
#define WAIT_ABANDONED_0                         0x00000080
#define INVALID_HANDLE_VALUE                     ((HANDLE)(intptr_t)-1)
#define MAXIMUM_WAIT_OBJECTS                     64

/* ---- error numbers (winerror.h, raserror.h, mprerror.h) -------------- */

#define NO_ERROR                                 0
#define ERROR_SUCCESS                            0
#define ROUTEBASE                                900
#define ROUTEBASEEND                             957
#define ERROR_FILE_NOT_FOUND                     2
#define ERROR_ACCESS_DENIED                      5
#define ERROR_INVALID_HANDLE                     6
#define ERROR_NOT_ENOUGH_MEMORY                  8
#define ERROR_NOT_SUPPORTED                      50
#define ERROR_INVALID_PARAMETER                  87
#define ERROR_MORE_DATA                          234
#define WAIT_TIMEOUT                             258
#define ERROR_MR_MID_NOT_FOUND                   317
#define PENDING                                  600
#define ERROR_REMOTE_DISCONNECTION               629
#define ERROR_FROM_DEVICE                        651
#define ERROR_NO_ANSWER                          678
#define ERROR_ROUTER_STOPPED                     900
#define ERROR_ALREADY_CONNECTED                  901
#define ERROR_UNKNOWN_PROTOCOL_ID                902
#define ERROR_DDM_NOT_RUNNING                    903
#define ERROR_INTERFACE_ALREADY_EXISTS           904
#define ERROR_NO_SUCH_INTERFACE                  905
#define ERROR_INTERFACE_NOT_CONNECTED            906
#define ERROR_PROTOCOL_STOP_PENDING              907
#define ERROR_INTERFACE_CONNECTED                908
#define ERROR_NO_INTERFACE_CREDENTIALS_SET       909
#define ERROR_ALREADY_CONNECTING                 910
#define ERROR_UPDATE_IN_PROGRESS                 911
#define ERROR_INTERFACE_CONFIGURATION            912
#define ERROR_NOT_CLIENT_PORT                    913
#define ERROR_NOT_ROUTER_PORT                    914
#define ERROR_CLIENT_INTERFACE_ALREADY_EXISTS    915
#define ERROR_INTERFACE_DISABLED                 916
#define ERROR_AUTH_PROTOCOL_REJECTED             917
#define ERROR_NO_AUTH_PROTOCOL_AVAILABLE         918
#define ERROR_PEER_REFUSED_AUTH                  919
#define ERROR_REMOTE_NO_DIALIN_PERMISSION        920
#define ERROR_REMOTE_PASSWD_EXPIRED              921
#define ERROR_REMOTE_ACCT_DISABLED               922
#define ERROR_REMOTE_RESTRICTED_LOGON_HOURS      923
#define ERROR_REMOTE_AUTHENTICATION_FAILURE      924
#define ERROR_INTERFACE_HAS_NO_DEVICES           925
#define ERROR_IDLE_DISCONNECTED                  926
#define ERROR_INTERFACE_UNREACHABLE              927
#define ERROR_SERVICE_IS_PAUSED                  928
#define ERROR_INTERFACE_DISCONNECTED             929
#define ERROR_AUTH_SERVER_TIMEOUT                930
#define ERROR_PORT_LIMIT_REACHED                 931
#define ERROR_PPP_SESSION_TIMEOUT                932
#define ERROR_MAX_LAN_INTERFACE_LIMIT            933
#define ERROR_MAX_WAN_INTERFACE_LIMIT            934
#define ERROR_MAX_CLIENT_INTERFACE_LIMIT         935
#define ERROR_BAP_DISCONNECTED                   936
#define ERROR_USER_LIMIT                         937
#define ERROR_NO_RADIUS_SERVERS                  938
#define ERROR_INVALID_RADIUS_RESPONSE            939
#define ERROR_DIALIN_HOURS_RESTRICTION           940
#define ERROR_ALLOWED_PORT_TYPE_RESTRICTION      941
#define ERROR_AUTH_PROTOCOL_RESTRICTION          942
#define ERROR_BAP_REQUIRED                       943
#define ERROR_DIALOUT_HOURS_RESTRICTION          944
#define ERROR_ROUTER_CONFIG_INCOMPATIBLE         945
#define WARNING_NO_MD5_MIGRATION                 946
#define ERROR_PROTOCOL_ALREADY_INSTALLED         948
#define ERROR_INVALID_SIGNATURE_LENGTH           949
#define ERROR_INVALID_SIGNATURE                  950
#define ERROR_NO_SIGNATURE                       951
#define ERROR_INVALID_PACKET_LENGTH_OR_ID        952
#define ERROR_INVALID_ATTRIBUTE_LENGTH           953
#define ERROR_INVALID_PACKET                     954
#define ERROR_AUTHENTICATOR_MISMATCH             955
#define ERROR_REMOTEACCESS_NOT_CONFIGURED        956
#define ERROR_CAN_NOT_COMPLETE                   1003
#define ERROR_PROCESS_ABORTED                    1067
#define ERROR_BAD_CONFIGURATION                  1610
#define RPC_S_INVALID_BINDING                    1702
#define RPC_S_UNKNOWN_IF                         1717
#define RPC_S_SERVER_UNAVAILABLE                 1722
#define RPC_S_SERVER_TOO_BUSY                    1723
#define RPC_S_PROTOCOL_ERROR                     1728
#define RPC_X_NULL_REF_POINTER                   1780
#define ERROR_NOT_ENOUGH_QUOTA                   1816

/* ---- router types (mprapi.h) ----------------------------------------- */

typedef HANDLE MPR_SERVER_HANDLE;

#define MAX_INTERFACE_NAME_LEN                   256

typedef enum _ROUTER_INTERFACE_TYPE {
    ROUTER_IF_TYPE_CLIENT,
    ROUTER_IF_TYPE_HOME_ROUTER,
    ROUTER_IF_TYPE_FULL_ROUTER,
    ROUTER_IF_TYPE_DEDICATED,
    ROUTER_IF_TYPE_INTERNAL,
    ROUTER_IF_TYPE_LOOPBACK,
    ROUTER_IF_TYPE_TUNNEL1,
    ROUTER_IF_TYPE_DIALOUT,
    ROUTER_IF_TYPE_MAX
} ROUTER_INTERFACE_TYPE;

typedef enum _ROUTER_CONNECTION_STATE {
    ROUTER_IF_STATE_UNREACHABLE,
    ROUTER_IF_STATE_DISCONNECTED,
    ROUTER_IF_STATE_CONNECTING,
    ROUTER_IF_STATE_CONNECTED
} ROUTER_CONNECTION_STATE;

/* fUnReachabilityReasons bits */
#define MPR_INTERFACE_OUT_OF_RESOURCES           0x00000001
#define MPR_INTERFACE_ADMIN_DISABLED             0x00000002
#define MPR_INTERFACE_CONNECTION_FAILURE         0x00000004
#define MPR_INTERFACE_SERVICE_PAUSED             0x00000008
#define MPR_INTERFACE_DIALOUT_HOURS_RESTRICTION  0x00000010
#define MPR_INTERFACE_NO_MEDIA_SENSE             0x00000020
#define MPR_INTERFACE_NO_DEVICE                  0x00000040

typedef struct _MPR_INTERFACE_0 {
    WCHAR wszInterfaceName[MAX_INTERFACE_NAME_LEN + 1];
    HANDLE hInterface;
    BOOL fEnabled;
    ROUTER_INTERFACE_TYPE dwIfType;
    ROUTER_CONNECTION_STATE dwConnectionState;
    DWORD fUnReachabilityReasons;
    DWORD dwLastError;
} MPR_INTERFACE_0, *PMPR_INTERFACE_0;

typedef struct _MPR_SERVER_0 {
    BOOL fLanOnlyMode;
    DWORD dwUpTime;
    DWORD dwTotalPorts;
    DWORD dwPortsInUse;
} MPR_SERVER_0, *PMPR_SERVER_0;

/* ---- router administration calls ------------------------------------- */

/* NULL or L"" is the local service; another name (host or host:port) is a
 * remote router, over TLS 1.3 with the client certificate that
 * $DDM_CLIENT_CONFIG, ~/.config/ddm/client.toml or /etc/ddm/client.toml
 * names. */
DWORD APIENTRY MprAdminServerConnect(LPWSTR lpwsServerName, MPR_SERVER_HANDLE *phMprServer);
VOID APIENTRY MprAdminServerDisconnect(MPR_SERVER_HANDLE hMprServer);
BOOL APIENTRY MprAdminIsServiceRunning(LPWSTR lpwsServerName);
DWORD APIENTRY MprAdminServerGetInfo(MPR_SERVER_HANDLE hMprServer, DWORD dwLevel, LPBYTE *lplpbBuffer);
DWORD APIENTRY MprAdminInterfaceEnum(MPR_SERVER_HANDLE hMprServer, DWORD dwLevel, LPBYTE *lplpbBuffer,
                                     DWORD dwPrefMaxLen, LPDWORD lpdwEntriesRead,
                                     LPDWORD lpdwTotalEntries, LPDWORD lpdwResumeHandle);
/* fIncludeClientInterfaces is accepted and changes nothing: ddm has no
 * dial-in client interfaces. Names compare exactly (Linux link names are
 * case-sensitive). */
DWORD APIENTRY MprAdminInterfaceGetHandle(MPR_SERVER_HANDLE hMprServer, LPWSTR lpwsInterfaceName,
                                          HANDLE *phInterface, BOOL fIncludeClientInterfaces);
DWORD APIENTRY MprAdminInterfaceGetInfo(MPR_SERVER_HANDLE hMprServer, HANDLE hInterface, DWORD dwLevel,
                                        LPBYTE *lplpbBuffer);
/* Dials a declared interface. hEvent given: PENDING, and hEvent is set
 * when the attempt completes, either way (read dwLastError with GetInfo).
 * hEvent NULL, fSynchronous TRUE: returns when the attempt completes,
 * NO_ERROR or its failure. NULL and FALSE: PENDING. An interface already
 * connected: NO_ERROR. A kernel link interface is not dialed by ddm:
 * NO_ERROR when connected, ERROR_NOT_SUPPORTED when not. */
DWORD APIENTRY MprAdminInterfaceConnect(MPR_SERVER_HANDLE hMprServer, HANDLE hInterface, HANDLE hEvent,
                                        BOOL fSynchronous);
/* Hangs up a declared interface or cancels its attempt; dwLastError becomes
 * ERROR_INTERFACE_DISCONNECTED. ERROR_INTERFACE_NOT_CONNECTED when there is
 * neither. */
DWORD APIENTRY MprAdminInterfaceDisconnect(MPR_SERVER_HANDLE hMprServer, HANDLE hInterface);
/* Level 0: fEnabled of the MPR_INTERFACE_0 is applied to a declared
 * interface (disabling a connected one hangs it up); the other fields are
 * ignored. A kernel link's fEnabled is the kernel's: ERROR_NOT_SUPPORTED
 * unless unchanged. */
DWORD APIENTRY MprAdminInterfaceSetInfo(MPR_SERVER_HANDLE hMprServer, HANDLE hInterface, DWORD dwLevel,
                                        LPBYTE lpbBuffer);
DWORD APIENTRY MprAdminRegisterConnectionNotification(MPR_SERVER_HANDLE hMprServer, HANDLE hEventNotification);
DWORD APIENTRY MprAdminDeregisterConnectionNotification(MPR_SERVER_HANDLE hMprServer, HANDLE hEventNotification);
DWORD APIENTRY MprAdminBufferFree(LPVOID pBuffer);
DWORD APIENTRY MprAdminGetErrorString(DWORD dwError, LPWSTR *lplpwsErrorString);

/* ---- event objects (synchapi.h, handleapi.h, errhandlingapi.h) -------- */

/* The library exports these Win32 calls under ddm_ names, and the Windows
 * names below are macros for them: a program, or another library, that
 * has its own Sleep or CloseHandle (Wine's, a test framework's) links and
 * runs beside libmprapi without a clash. A file that defines a function
 * of one of these names itself defines DDM_NO_WIN32_NAMES before including
 * this header and calls the ddm_ names. */
/* Unnamed events only: a name gives NULL and ERROR_NOT_SUPPORTED. */
HANDLE WINAPI ddm_CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset, BOOL bInitialState,
                               LPCWSTR lpName);
BOOL WINAPI ddm_SetEvent(HANDLE hEvent);
BOOL WINAPI ddm_ResetEvent(HANDLE hEvent);
DWORD WINAPI ddm_WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
DWORD WINAPI ddm_WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
                                        DWORD dwMilliseconds);
BOOL WINAPI ddm_CloseHandle(HANDLE hObject);
DWORD WINAPI ddm_GetLastError(void);
VOID WINAPI ddm_SetLastError(DWORD dwErrCode);
HLOCAL WINAPI ddm_LocalFree(HLOCAL hMem);
VOID WINAPI ddm_Sleep(DWORD dwMilliseconds);

#ifndef DDM_NO_WIN32_NAMES
#define CreateEventW ddm_CreateEventW
#define CreateEvent ddm_CreateEventW
#define SetEvent ddm_SetEvent
#define ResetEvent ddm_ResetEvent
#define WaitForSingleObject ddm_WaitForSingleObject
#define WaitForMultipleObjects ddm_WaitForMultipleObjects
#define CloseHandle ddm_CloseHandle
#define GetLastError ddm_GetLastError
#define SetLastError ddm_SetLastError
#define LocalFree ddm_LocalFree
#define Sleep ddm_Sleep
#endif

/* ddm extension: a descriptor that polls readable while the event is
 * signaled, for poll, epoll and event loops; -1 for an invalid handle.
 * It belongs to the event: do not close it. */
int MprEventGetFd(HANDLE hEvent);

#ifdef __cplusplus
}
#endif

#endif /* DDM_MPRAPI_H */
