/* The structures have the Windows x64 layout with a 16-bit WCHAR: a
 * mismatch fails the build, and the program prints what it checked. */
#include <stddef.h>
#include "check.h"

_Static_assert(sizeof(WCHAR) == 2, "WCHAR is 16 bits");
_Static_assert(sizeof(DWORD) == 4 && sizeof(BOOL) == 4, "DWORD and BOOL are 32 bits");
_Static_assert(sizeof(ROUTER_INTERFACE_TYPE) == 4 && sizeof(ROUTER_CONNECTION_STATE) == 4, "enums are 32 bits");
_Static_assert(sizeof(MPR_INTERFACE_0) == 552, "sizeof(MPR_INTERFACE_0)");
_Static_assert(offsetof(MPR_INTERFACE_0, wszInterfaceName) == 0, "wszInterfaceName");
_Static_assert(offsetof(MPR_INTERFACE_0, hInterface) == 520, "hInterface");
_Static_assert(offsetof(MPR_INTERFACE_0, fEnabled) == 528, "fEnabled");
_Static_assert(offsetof(MPR_INTERFACE_0, dwIfType) == 532, "dwIfType");
_Static_assert(offsetof(MPR_INTERFACE_0, dwConnectionState) == 536, "dwConnectionState");
_Static_assert(offsetof(MPR_INTERFACE_0, fUnReachabilityReasons) == 540, "fUnReachabilityReasons");
_Static_assert(offsetof(MPR_INTERFACE_0, dwLastError) == 544, "dwLastError");
_Static_assert(sizeof(MPR_SERVER_0) == 16, "sizeof(MPR_SERVER_0)");
_Static_assert(offsetof(MPR_SERVER_0, fLanOnlyMode) == 0, "fLanOnlyMode");
_Static_assert(offsetof(MPR_SERVER_0, dwUpTime) == 4, "dwUpTime");
_Static_assert(offsetof(MPR_SERVER_0, dwTotalPorts) == 8, "dwTotalPorts");
_Static_assert(offsetof(MPR_SERVER_0, dwPortsInUse) == 12, "dwPortsInUse");

int main(void) {
    CHECK_EQ(sizeof(MPR_INTERFACE_0), 552);
    CHECK_EQ(offsetof(MPR_INTERFACE_0, hInterface), 520);
    CHECK_EQ(offsetof(MPR_INTERFACE_0, dwLastError), 544);
    CHECK_EQ(sizeof(MPR_SERVER_0), 16);
    CHECK_EQ(ROUTER_IF_STATE_CONNECTED, 3);
    CHECK_EQ(ROUTER_IF_TYPE_LOOPBACK, 5);
    CHECK_EQ(ERROR_DDM_NOT_RUNNING, 903);
    CHECK_EQ(ROUTEBASE + 3, ERROR_DDM_NOT_RUNNING);
    return check_summary("layout");
}
