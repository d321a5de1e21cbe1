//! The messages of `proto/ddm.proto`, as Rust types.
//!
//! Written out with prost's derives rather than generated at build time, so
//! building ddm needs no protoc and no code generator. Every struct, field
//! and tag here mirrors the schema file one for one; change both together.

#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientMessage {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(oneof = "Request", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub body: Option<Request>,
}

/// The body of a [`ClientMessage`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request {
    #[prost(message, tag = "2")]
    Hello(Hello),
    #[prost(message, tag = "3")]
    ServerGetInfo(ServerGetInfo),
    #[prost(message, tag = "4")]
    InterfaceEnum(InterfaceEnum),
    #[prost(message, tag = "5")]
    InterfaceGetInfo(InterfaceGetInfo),
    #[prost(message, tag = "6")]
    Register(Register),
    #[prost(message, tag = "7")]
    Deregister(Deregister),
    #[prost(message, tag = "8")]
    RouterControl(RouterControl),
    #[prost(message, tag = "9")]
    ListSessions(ListSessions),
    #[prost(message, tag = "10")]
    Subscribe(Subscribe),
    #[prost(message, tag = "11")]
    Unsubscribe(Unsubscribe),
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub version: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ServerGetInfo {
    #[prost(uint32, tag = "1")]
    pub level: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct InterfaceEnum {
    #[prost(uint32, tag = "1")]
    pub level: u32,
    #[prost(uint32, tag = "2")]
    pub max_entries: u32,
    #[prost(uint32, tag = "3")]
    pub resume_handle: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct InterfaceGetInfo {
    #[prost(uint32, tag = "1")]
    pub level: u32,
    #[prost(uint32, tag = "2")]
    pub handle: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Register {
    #[prost(uint64, tag = "1")]
    pub event: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Deregister {
    #[prost(uint64, tag = "1")]
    pub event: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct RouterControl {
    #[prost(bool, tag = "1")]
    pub run: bool,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ListSessions {}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Subscribe {}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Unsubscribe {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceMessage {
    #[prost(oneof = "Push", tags = "1, 2, 3, 4")]
    pub body: Option<Push>,
}

/// The body of a [`ServiceMessage`]: a reply, or a frame the service sends
/// unasked.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Push {
    #[prost(message, tag = "1")]
    Reply(Reply),
    #[prost(message, tag = "2")]
    Event(ConnectionEvent),
    #[prost(message, tag = "3")]
    Missed(Missed),
    #[prost(message, tag = "4")]
    StreamEnd(StreamEnd),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint32, tag = "2")]
    pub error: u32,
    #[prost(oneof = "ReplyResult", tags = "3, 4, 5, 6, 7, 8")]
    pub result: Option<ReplyResult>,
}

/// What a successful [`Reply`] carries.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ReplyResult {
    #[prost(message, tag = "3")]
    Welcome(Welcome),
    #[prost(message, tag = "4")]
    ServerInfo(ServerInfo),
    #[prost(message, tag = "5")]
    Interfaces(InterfaceList),
    #[prost(message, tag = "6")]
    Interface(Interface),
    #[prost(message, tag = "7")]
    Snapshot(Snapshot),
    #[prost(message, tag = "8")]
    Sessions(SessionList),
}

/// Who a session's peer is to the service; each role includes the ones
/// below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Role {
    None = 0,
    Status = 1,
    Monitor = 2,
    Admin = 3,
}

impl Role {
    /// Lower-case name, as the CLI and the configuration spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Status => "status",
            Role::Monitor => "monitor",
            Role::Admin => "admin",
        }
    }
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Welcome {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(enumeration = "Role", tag = "2")]
    pub role: i32,
    #[prost(uint64, tag = "3")]
    pub session: u64,
    #[prost(uint32, tag = "4")]
    pub max_frame: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ServerInfo {
    #[prost(bool, tag = "1")]
    pub lan_only_mode: bool,
    #[prost(uint32, tag = "2")]
    pub up_time: u32,
    #[prost(uint32, tag = "3")]
    pub total_ports: u32,
    #[prost(uint32, tag = "4")]
    pub ports_in_use: u32,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Interface {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub handle: u32,
    #[prost(bool, tag = "3")]
    pub enabled: bool,
    #[prost(uint32, tag = "4")]
    pub if_type: u32,
    #[prost(uint32, tag = "5")]
    pub connection_state: u32,
    #[prost(uint32, tag = "6")]
    pub unreachability_reasons: u32,
    #[prost(uint32, tag = "7")]
    pub last_error: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InterfaceList {
    #[prost(message, repeated, tag = "1")]
    pub interfaces: Vec<Interface>,
    #[prost(uint32, tag = "2")]
    pub total_entries: u32,
    #[prost(uint32, tag = "3")]
    pub resume_handle: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(message, repeated, tag = "2")]
    pub interfaces: Vec<Interface>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConnectionEvent {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(uint32, tag = "2")]
    pub handle: u32,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(uint32, tag = "4")]
    pub from: u32,
    #[prost(uint32, tag = "5")]
    pub to: u32,
    #[prost(uint64, tag = "6")]
    pub time_unix_ns: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Missed {
    #[prost(uint64, tag = "1")]
    pub count: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct StreamEnd {
    #[prost(uint32, tag = "1")]
    pub error: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionList {
    #[prost(message, repeated, tag = "1")]
    pub sessions: Vec<SessionEntry>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SessionEntry {
    #[prost(uint64, tag = "1")]
    pub session: u64,
    #[prost(int32, tag = "2")]
    pub pid: i32,
    #[prost(uint32, tag = "3")]
    pub uid: u32,
    #[prost(enumeration = "Role", tag = "4")]
    pub role: i32,
    #[prost(uint32, tag = "5")]
    pub registrations: u32,
    #[prost(bool, tag = "6")]
    pub subscribed: bool,
}
