//! Win32 error numbers, with their symbolic names and texts.
//!
//! ddm speaks the error language of the Windows router administration API
//! (mprapi.h, mprerror.h, winerror.h) end to end: the service puts the number
//! on the wire, the client library returns it, the C library hands it to C
//! callers unchanged and the CLI prints `NAME (number): text`. One table here
//! serves all of them, so a number never has two names or two texts.

use std::fmt;

/// A Win32 error number. `WinError(0)` is `NO_ERROR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WinError(pub u32);

macro_rules! win32_errors {
    ($( $name:ident = $code:expr, $text:expr; )*) => {
        impl WinError {
            $( pub const $name: WinError = WinError($code); )*

            /// Every known error: (number, symbolic name, text).
            pub const ALL: &'static [(u32, &'static str, &'static str)] = &[
                $( ($code, stringify!($name), $text), )*
            ];
        }
    };
}

win32_errors! {
    NO_ERROR = 0, "The operation completed successfully.";
    ERROR_FILE_NOT_FOUND = 2, "The system cannot find the file specified.";
    ERROR_ACCESS_DENIED = 5, "Access is denied.";
    ERROR_INVALID_HANDLE = 6, "The handle is invalid.";
    ERROR_NOT_ENOUGH_MEMORY = 8, "Not enough memory resources are available to process this command.";
    ERROR_NOT_SUPPORTED = 50, "The request is not supported.";
    ERROR_INVALID_PARAMETER = 87, "The parameter is incorrect.";
    ERROR_MORE_DATA = 234, "More data is available.";
    WAIT_TIMEOUT = 258, "The wait operation timed out.";
    ERROR_MR_MID_NOT_FOUND = 317, "The system cannot find message text for message number 0x%1 in the message file for %2.";
    PENDING = 600, "An operation is pending.";
    ERROR_REMOTE_DISCONNECTION = 629, "The connection was closed by the remote computer.";
    ERROR_FROM_DEVICE = 651, "The modem (or other connecting device) has reported an error.";
    ERROR_NO_ANSWER = 678, "The remote computer did not respond.";
    ERROR_ROUTER_STOPPED = 900, "The router is not running.";
    ERROR_ALREADY_CONNECTED = 901, "The interface is already connected.";
    ERROR_UNKNOWN_PROTOCOL_ID = 902, "The specified protocol identifier is not known to the router.";
    ERROR_DDM_NOT_RUNNING = 903, "The Demand-dial Interface Manager is not running.";
    ERROR_INTERFACE_ALREADY_EXISTS = 904, "An interface with this name is already registered with the router.";
    ERROR_NO_SUCH_INTERFACE = 905, "An interface with this name is not registered with the router.";
    ERROR_INTERFACE_NOT_CONNECTED = 906, "The interface is not connected.";
    ERROR_PROTOCOL_STOP_PENDING = 907, "The specified protocol is stopping.";
    ERROR_INTERFACE_CONNECTED = 908, "The interface is connected and hence cannot be deleted.";
    ERROR_NO_INTERFACE_CREDENTIALS_SET = 909, "The interface credentials have not been set.";
    ERROR_ALREADY_CONNECTING = 910, "This interface is already in the process of connecting.";
    ERROR_UPDATE_IN_PROGRESS = 911, "An update of routing information on this interface is already in progress.";
    ERROR_INTERFACE_CONFIGURATION = 912, "The interface confugration in invalid. There is already another interface that is connected to the same inteface on the remote router.";
    ERROR_NOT_CLIENT_PORT = 913, "A Remote Access Client attempted to connect over a port that was reserved for Routers only.";
    ERROR_NOT_ROUTER_PORT = 914, "A Demand Dial Router attempted to connect over a port that was reserved for Remote Access Clients only.";
    ERROR_CLIENT_INTERFACE_ALREADY_EXISTS = 915, "The client interface with this name already exists and is currently connected.";
    ERROR_INTERFACE_DISABLED = 916, "The interface is in a disabled state.";
    ERROR_AUTH_PROTOCOL_REJECTED = 917, "The authentication protocol was rejected by the remote peer.";
    ERROR_NO_AUTH_PROTOCOL_AVAILABLE = 918, "There are no authentication protocols available for use.";
    ERROR_PEER_REFUSED_AUTH = 919, "The connection could not be established because the authentication protocol used by the RAS/VPN server to verify your username and password could not be matched with the settings in your connection profile.";
    ERROR_REMOTE_NO_DIALIN_PERMISSION = 920, "The remote account does not have Remote Access permission.";
    ERROR_REMOTE_PASSWD_EXPIRED = 921, "The remote account has expired.";
    ERROR_REMOTE_ACCT_DISABLED = 922, "The remote account is disabled.";
    ERROR_REMOTE_RESTRICTED_LOGON_HOURS = 923, "The remote account is not permitted to logon at this time of day.";
    ERROR_REMOTE_AUTHENTICATION_FAILURE = 924, "Access was denied to the remote peer  because username and/or password is invalid on the domain.";
    ERROR_INTERFACE_HAS_NO_DEVICES = 925, "There are no routing enabled ports available for use by this demand dial interface.";
    ERROR_IDLE_DISCONNECTED = 926, "The port has been disconnected due to inactivity.";
    ERROR_INTERFACE_UNREACHABLE = 927, "The interface is not reachable at this time.";
    ERROR_SERVICE_IS_PAUSED = 928, "The Demand Dial service is in a paused state.";
    ERROR_INTERFACE_DISCONNECTED = 929, "The interface has been disconnected by the administrator.";
    ERROR_AUTH_SERVER_TIMEOUT = 930, "The authentication server did not respond to authentication requests in a timely fashion.";
    ERROR_PORT_LIMIT_REACHED = 931, "The maximum number of ports allowed for use in the multilinked connection has been reached.";
    ERROR_PPP_SESSION_TIMEOUT = 932, "The connection time limit for the user has been reached.";
    ERROR_MAX_LAN_INTERFACE_LIMIT = 933, "The maximum limit on the number of LAN interfaces supported has been reached.";
    ERROR_MAX_WAN_INTERFACE_LIMIT = 934, "The maximum limit on the number of Demand Dial interfaces supported has been reached.";
    ERROR_MAX_CLIENT_INTERFACE_LIMIT = 935, "The maximum limit on the number of Remote Access clients supported has been reached.";
    ERROR_BAP_DISCONNECTED = 936, "The port has been disconnected due to the BAP policy.";
    ERROR_USER_LIMIT = 937, "Because another connection of your type is in use, the incoming connection cannot accept your connection request.";
    ERROR_NO_RADIUS_SERVERS = 938, "No RADIUS servers were located on the network.";
    ERROR_INVALID_RADIUS_RESPONSE = 939, "An invalid response was received from the RADIUS authentication server. Make sure that the case sensitive secret pasword for the RADIUS server is set correctly.";
    ERROR_DIALIN_HOURS_RESTRICTION = 940, "You do not have permission to connect at this time.";
    ERROR_ALLOWED_PORT_TYPE_RESTRICTION = 941, "You do not have permission to connect using the current device type.";
    ERROR_AUTH_PROTOCOL_RESTRICTION = 942, "The connection could not be established because the authentication method used by your connection profile is not permitted for use by an access policy configured on the RAS/VPN server. Specifically, this could be due to configuration differences between the authentication method selected on the RAS/VPN server and the access policy configured for it.";
    ERROR_BAP_REQUIRED = 943, "BAP is required for this user.";
    ERROR_DIALOUT_HOURS_RESTRICTION = 944, "The interface is not allowed to connect at this time.";
    ERROR_ROUTER_CONFIG_INCOMPATIBLE = 945, "The saved router configuration is incompatible with the current router.";
    WARNING_NO_MD5_MIGRATION = 946, "RemoteAccess has detected older format user accounts that will not be migrated automatically. To migrate these manually, run XXXX.";
    ERROR_PROTOCOL_ALREADY_INSTALLED = 948, "The transport is already installed with the router.";
    ERROR_INVALID_SIGNATURE_LENGTH = 949, "Received invalid signature length in packet from RADIUS server.";
    ERROR_INVALID_SIGNATURE = 950, "Received invalid signature in packet from RADIUS server.";
    ERROR_NO_SIGNATURE = 951, "Did not receive signature along with EAPMessage from RADIUS server.";
    ERROR_INVALID_PACKET_LENGTH_OR_ID = 952, "Received packet with invalid length or Id from RADIUS server.";
    ERROR_INVALID_ATTRIBUTE_LENGTH = 953, "Received packet with attribute with invalid length from RADIUS server.";
    ERROR_INVALID_PACKET = 954, "Received invalid packet from RADIUS server.";
    ERROR_AUTHENTICATOR_MISMATCH = 955, "Authenticator does not match in packet from RADIUS server.";
    ERROR_REMOTEACCESS_NOT_CONFIGURED = 956, "Routing and Remote access server is either not configured or not running.";
    ERROR_CAN_NOT_COMPLETE = 1003, "Cannot complete this function.";
    ERROR_PROCESS_ABORTED = 1067, "The process terminated unexpectedly.";
    ERROR_BAD_CONFIGURATION = 1610, "The configuration data for this product is corrupt. Contact your support personnel.";
    RPC_S_INVALID_BINDING = 1702, "The binding handle is invalid.";
    RPC_S_UNKNOWN_IF = 1717, "The interface is unknown.";
    RPC_S_SERVER_UNAVAILABLE = 1722, "The RPC server is unavailable.";
    RPC_S_SERVER_TOO_BUSY = 1723, "The RPC server is too busy to complete this operation.";
    RPC_S_PROTOCOL_ERROR = 1728, "A remote procedure call (RPC) protocol error occurred.";
    RPC_X_NULL_REF_POINTER = 1780, "A null reference pointer was passed to the stub.";
    ERROR_NOT_ENOUGH_QUOTA = 1816, "Not enough quota is available to process this command.";
}

impl WinError {
    fn entry(self) -> Option<&'static (u32, &'static str, &'static str)> {
        Self::ALL.iter().find(|(code, _, _)| *code == self.0)
    }

    /// The symbolic name, e.g. `ERROR_DDM_NOT_RUNNING`, or `UNKNOWN_ERROR`.
    pub fn name(self) -> &'static str {
        self.entry().map_or("UNKNOWN_ERROR", |e| e.1)
    }

    /// The message text, as `MprAdminGetErrorString` returns it, or
    /// `ERROR_MR_MID_NOT_FOUND` when the number is not one of ours.
    pub fn text(self) -> Result<&'static str, WinError> {
        self.entry()
            .map(|e| e.2)
            .ok_or(WinError::ERROR_MR_MID_NOT_FOUND)
    }

    /// True for `NO_ERROR`.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for `NO_ERROR`, `Err(self)` otherwise.
    pub fn into_result(self) -> Result<(), WinError> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for WinError {
    /// `NAME (number): text`, the form every ddm tool prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text().unwrap_or("Unknown error.");
        write!(f, "{} ({}): {}", self.name(), self.0, text)
    }
}

impl fmt::Debug for WinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl std::error::Error for WinError {}

impl From<WinError> for u32 {
    fn from(e: WinError) -> u32 {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_name_number_text() {
        assert_eq!(
            WinError::ERROR_DDM_NOT_RUNNING.to_string(),
            "ERROR_DDM_NOT_RUNNING (903): The Demand-dial Interface Manager is not running."
        );
    }

    #[test]
    fn unknown_code_has_no_text() {
        assert_eq!(WinError(947).text(), Err(WinError::ERROR_MR_MID_NOT_FOUND));
        assert_eq!(WinError(12345).name(), "UNKNOWN_ERROR");
    }

    #[test]
    fn numbers_and_names_are_unique() {
        for (i, a) in WinError::ALL.iter().enumerate() {
            for b in &WinError::ALL[i + 1..] {
                assert_ne!(a.0, b.0, "{} and {} share a number", a.1, b.1);
                assert_ne!(a.1, b.1);
            }
        }
    }

    #[test]
    fn every_router_code_from_900_to_956_but_947_is_known() {
        for code in (900..=956).filter(|c| *c != 947) {
            assert!(WinError(code).text().is_ok(), "{code} has no text");
        }
    }
}
