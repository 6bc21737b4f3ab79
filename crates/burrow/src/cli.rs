//! Command-line interface definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// burrow: a self-hosted zero-trust network edge.
///
/// Publish services from a private network without opening inbound ports:
/// run `burrow edge` on a public host, create a tunnel, run `burrow tunnel
/// run` next to the service. `burrow quick --hello-world` shows the whole
/// path in one process.
#[derive(Parser, Debug)]
#[command(name = "burrow", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    /// Wins over `loglevel:` in edge.yaml or config.yml. [default: info]
    #[arg(long, global = true, env = "BURROW_LOGLEVEL")]
    pub(crate) loglevel: Option<String>,
    /// Log format (`--output` is cloudflared's spelling).
    #[arg(long, alias = "output", global = true, value_enum, default_value_t = LogFormat::Text, env = "BURROW_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// Write logs to FILE instead of stderr, rotated at --logfile-max-size
    /// (FILE → FILE.1; one old file is kept).
    #[arg(long, global = true, value_name = "FILE", env = "BURROW_LOGFILE")]
    pub(crate) logfile: Option<PathBuf>,
    /// Size at which --logfile rotates, in MB.
    #[arg(long, global = true, default_value_t = 10, value_name = "MB")]
    pub(crate) logfile_max_size: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run an edge node: the tunnel endpoint connectors dial, app listeners
    /// and the admin API.
    Edge(Box<burrow_config::edge::EdgeSettings>),
    /// Manage tunnels (through the edge admin API) and run a connector.
    Tunnel(TunnelArgs),
    /// Manage apps: edge TCP/UDP ports proxied to direct, DNS or tunnel origins.
    App(AppArgs),
    /// An edge and a connector in one process on loopback, for a quick try.
    Quick(QuickArgs),
    /// Manage IP access rules (applied to apps created with --ip-firewall).
    AccessRule(AccessArgs),
    /// Route public hostnames (`route dns`, served by the edge's
    /// --http/--https listeners) and private networks (`route ip`, for
    /// zero-trust clients) to tunnels.
    Route(RouteArgs),
    /// Virtual networks: separate address spaces for private-network
    /// routes (`burrow route ip add --vnet NAME`).
    Vnet(VnetArgs),
    /// Dedicated egress IPs and the colo that owns each (egress policies'
    /// `dedicated` actions leave from the owning colo).
    EgressIp(EgressIpArgs),
    /// The edge nodes sharing this edge's store: colo, tunnel endpoint,
    /// lease, connections held.
    Cluster(ClusterArgs),
    /// Manage users of the zero-trust client.
    User(UserArgs),
    /// Enroll, list and revoke users' devices.
    Device(DeviceArgs),
    /// Egress policies of zero-trust clients: the edge's ordered list (set,
    /// show, list, add, move, delete), or lint a rule file and see which
    /// rule a flow would match and why.
    Policy(PolicyArgs),
    /// Install burrow as a systemd service.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Size connector hosts for a number of users (ports, hosts, cores,
    /// memory), from the 50,000-ports-per-4,000-users rule of thumb and
    /// this build's measured memory per session.
    Capacity {
        /// Users in one location.
        #[arg(long)]
        users: u64,
        /// Concurrent sessions per user. [default: 12.5, what the rule of
        /// thumb implies]
        #[arg(long)]
        sessions_per_user: Option<f64>,
    },
    /// Zero-trust client: connect this device to the edge and serve a local
    /// SOCKS5 proxy (try it with `curl --socks5-hostname 127.0.0.1:1080 URL`).
    Client(ClientArgs),
    /// Reach a TCP service published through a tunnel (an `ssh://`,
    /// `tcp://`, `rdp://` or `smb://` ingress rule) as `cloudflared access`
    /// does: the bytes go over a WebSocket to the edge's HTTPS listener,
    /// which routes the hostname into the tunnel.
    Access(AccessClientArgs),
}

#[derive(Args, Debug)]
pub(crate) struct AccessClientArgs {
    #[command(subcommand)]
    pub(crate) command: AccessClientCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AccessClientCommand {
    /// Carry one TCP stream to HOSTNAME's service: stdin/stdout (for ssh's
    /// ProxyCommand: `ssh -o ProxyCommand="burrow access ssh --hostname %h"
    /// HOST`), or with --url a local listener whose every connection is
    /// carried. `ssh`, `rdp` and `smb` are the same command.
    #[command(visible_aliases = ["ssh", "rdp", "smb"])]
    Tcp(Box<AccessTcpArgs>),
    /// Make an Access service token: prints the client id and secret to
    /// give `burrow access` (or send as CF-Access-Client-Id/Secret), and the
    /// `serviceTokens` entry for the connector's `access:` settings, which
    /// holds only the secret's SHA-256.
    ServiceToken {
        /// Print JSON (clientId, clientSecret, clientSecretSha256).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct AccessTcpArgs {
    /// The service's public hostname (a `burrow route dns` name whose
    /// ingress rule is ssh://, tcp://, rdp:// or smb://); `https://` and a
    /// port may be given.
    #[arg(
        long,
        short = 'T',
        alias = "tunnel-host",
        env = "TUNNEL_SERVICE_HOSTNAME"
    )]
    pub(crate) hostname: String,
    /// Listen on this local address and carry each connection, instead of
    /// stdin/stdout (e.g. 127.0.0.1:2222). [default: stdin/stdout]
    #[arg(
        long,
        short = 'L',
        alias = "listener",
        env = "TUNNEL_SERVICE_URL",
        value_name = "HOST:PORT"
    )]
    pub(crate) url: Option<String>,
    /// Where the edge's HTTPS listener is (`HOST[:PORT]`, or
    /// `http://HOST:PORT` for a plain-HTTP listener; the token then
    /// crosses the network unencrypted). The TLS name is still --hostname.
    /// [default: --hostname's own address, port 443]
    #[arg(
        long,
        alias = "connect-to",
        env = "BURROW_ACCESS_EDGE",
        value_name = "ADDR"
    )]
    pub(crate) edge: Option<String>,
    /// A CA certificate (PEM) the edge's certificate may chain to, besides
    /// the system's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) edge_ca: Option<PathBuf>,
    /// Access service token id (CF-Access-Client-Id); `burrow access
    /// service-token` makes one. Prefer the environment variable: a flag
    /// is visible to other users in `ps`.
    #[arg(long, alias = "id", env = "TUNNEL_SERVICE_TOKEN_ID", value_name = "ID")]
    pub(crate) service_token_id: Option<String>,
    /// Access service token secret (CF-Access-Client-Secret).
    #[arg(
        long,
        alias = "secret",
        env = "TUNNEL_SERVICE_TOKEN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) service_token_secret: Option<String>,
    /// An Access JWT, sent as Cf-Access-Jwt-Assertion (burrow's addition;
    /// cloudflared gets one from a browser login).
    #[arg(
        long,
        env = "BURROW_ACCESS_TOKEN",
        value_name = "JWT",
        hide_env_values = true
    )]
    pub(crate) access_token: Option<String>,
    /// The SSH server behind a bastion rule (sent as
    /// Cf-Access-Jump-Destination).
    #[arg(long, env = "TUNNEL_SERVICE_DESTINATION", value_name = "HOST:PORT")]
    pub(crate) destination: Option<String>,
    /// An extra request header, `NAME: VALUE` (repeatable).
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    pub(crate) header: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ServiceCommand {
    /// Write a hardened systemd unit (burrow-edge.service or
    /// burrow-connector.service) and print what to run next.
    Install {
        /// edge or connector.
        #[arg(value_enum)]
        kind: crate::service::Kind,
        /// The config file the service runs with. [default:
        /// /etc/burrow/edge.yaml or /etc/burrow/config.yml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// The burrow binary the unit runs (install it there first; the
        /// next steps say how when it is not this one).
        /// [default: /usr/local/bin/burrow]
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The account the service runs as.
        #[arg(long, default_value = "burrow")]
        user: String,
        /// Where the unit goes.
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
        /// Print the unit instead of writing it.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct PolicyArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Replace the edge's egress policies with the rules in FILE (an
    /// ordered JSON list; first match wins). Prints lint findings.
    Set {
        /// Rules as JSON.
        #[arg(long)]
        file: PathBuf,
    },
    /// Print the edge's egress policies as JSON.
    Show,
    /// List the edge's egress policies in order, one line each (position,
    /// id, name, selector, action, the id the session log gives it).
    List {
        /// Print JSON (the rules, as `policy show`).
        #[arg(long)]
        json: bool,
    },
    /// Add one rule (at the end, or at --position). Selector flags are
    /// AND-ed, repeated flags OR-ed; without --dedicated or --block the
    /// action is the default egress. Or give the whole rule as --json.
    Add(Box<PolicyAdd>),
    /// Move rule ID to POSITION (1 is first).
    Move {
        /// Rule id.
        id: String,
        /// New position, 1-based.
        #[arg(long)]
        position: usize,
    },
    /// Delete rule ID.
    Delete {
        /// Rule id.
        id: String,
    },
    /// List rules that can never match (an earlier rule covers them) and a
    /// missing catch-all. Exit 1 when there are findings.
    Lint {
        /// Rules as JSON (a list; see the README).
        #[arg(long)]
        file: PathBuf,
    },
    /// Show which rule a flow matches, and why each rule before it does not.
    Test {
        /// Rules as JSON.
        #[arg(long)]
        file: PathBuf,
        /// User email.
        #[arg(long)]
        user: Option<String>,
        /// Group of the user; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Device id.
        #[arg(long)]
        device: Option<String>,
        /// Client source IP.
        #[arg(long, default_value = "192.0.2.1")]
        src: String,
        /// Destination IP.
        #[arg(long)]
        dst: Option<String>,
        /// Destination port.
        #[arg(long, default_value_t = 443)]
        port: u16,
        /// tcp or udp.
        #[arg(long, default_value = "tcp")]
        protocol: String,
        /// Destination hostname.
        #[arg(long)]
        hostname: Option<String>,
        /// The destination is served by this edge ("orange").
        #[arg(long)]
        proxied: bool,
        /// Virtual network.
        #[arg(long)]
        vnet: Option<String>,
    },
}

/// `burrow policy add`.
#[derive(Args, Debug)]
pub(crate) struct PolicyAdd {
    /// Rule id (unique).
    #[arg(long, required_unless_present = "json")]
    pub(crate) id: Option<String>,
    /// Rule name (shown in the session log's EgressRuleName).
    #[arg(long, default_value = "")]
    pub(crate) name: String,
    /// 1-based position. [default: last]
    #[arg(long)]
    pub(crate) position: Option<usize>,
    /// The whole rule as JSON (the format of `policy set`); no other
    /// rule flags then.
    #[arg(long, conflicts_with_all = ["id", "dedicated"])]
    pub(crate) json: Option<String>,
    /// What the rule matches: the selector's keys as flags.
    #[command(flatten)]
    pub(crate) selector: burrow_config::egress::RawSelector,
    /// Dedicated egress: the primary IPv4 source address.
    #[arg(long, value_name = "IPV4", conflicts_with = "block")]
    pub(crate) dedicated: Option<String>,
    /// Refuse matching flows (session log: BLOCKED_BY_POLICY).
    #[arg(long)]
    pub(crate) block: bool,
    /// Dedicated egress: the secondary IPv4 (failover).
    #[arg(long, value_name = "IPV4", requires = "dedicated")]
    pub(crate) secondary: Option<String>,
    /// Dedicated egress: the IPv6 range.
    #[arg(long, value_name = "CIDR", requires = "dedicated")]
    pub(crate) ipv6_range: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ClientArgs {
    /// Device credential file written by `burrow device enroll`.
    #[arg(long, env = "BURROW_DEVICE_CREDENTIALS")]
    pub(crate) credentials: PathBuf,
    /// Edge address host:port. [default: the one in the credentials]
    #[arg(long)]
    pub(crate) edge: Option<String>,
    /// The edge's CA certificate (PEM). [default: the one in the credentials]
    #[arg(long)]
    pub(crate) edge_ca: Option<PathBuf>,
    /// Local SOCKS5 listener (loopback).
    #[arg(long, default_value = "127.0.0.1:1080")]
    pub(crate) socks: String,
    /// Local HTTP CONNECT proxy (loopback), e.g. 127.0.0.1:8080
    /// (`curl -p -x http://127.0.0.1:8080 URL`). [default: off]
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) http_proxy: Option<String>,
    /// Virtual network whose private routes this client uses (`burrow vnet
    /// list`). [default: the edge's default vnet]
    #[arg(long, value_name = "NAME")]
    pub(crate) vnet: Option<String>,
    /// Transport to the edge: auto (QUIC, else HTTP/2 over TCP), quic or
    /// http2.
    #[arg(long, default_value = "auto", value_parser = ["auto", "quic", "http2"])]
    pub(crate) protocol: String,
    /// Let --socks / --http-proxy listen on a non-loopback address. The
    /// proxies have no authentication: anyone who reaches them uses this
    /// device's identity and policies.
    #[arg(long)]
    pub(crate) allow_lan: bool,
}

#[derive(Args, Debug)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: UserCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Add a user.
    Add {
        /// Email address (the user's id).
        email: String,
        /// Group membership; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List users: email, groups, created (UTC).
    List {
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user and their devices.
    Delete {
        /// Email address.
        email: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct DeviceArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: DeviceCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeviceCommand {
    /// Enroll a device for a user and write its credential file (mode 0600).
    Enroll {
        /// The user's email.
        #[arg(long)]
        user: String,
        /// A name for the device (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// Where to write the credentials. [default: ./device-NAME.json]
        #[arg(long)]
        credentials_file: Option<PathBuf>,
    },
    /// List devices: id, owner, name, state, enrolled (UTC).
    List {
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: it is refused from now on.
    Revoke {
        /// Device id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct RouteArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: RouteCommand,
}

/// Hostname routes: an exact name beats a wildcard; among wildcards the
/// longest suffix wins.
#[derive(Subcommand, Debug)]
pub(crate) enum RouteCommand {
    /// Route HTTP(S) requests for HOSTNAME (or *.example.com) to TUNNEL,
    /// as `cloudflared tunnel route dns` does. Point the name's DNS record
    /// at the edge yourself.
    Dns {
        /// Tunnel name or id.
        tunnel: String,
        /// Public hostname, exact or with a leading `*.`.
        hostname: String,
    },
    /// List routes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the route of HOSTNAME.
    Delete {
        /// The hostname as routed.
        hostname: String,
    },
    /// Private networks: zero-trust clients' flows to addresses in a routed
    /// network go through the tunnel, whose connector dials them (as
    /// `cloudflared tunnel route ip`).
    #[command(subcommand)]
    Ip(IpRouteCommand),
}

/// Within a virtual network the longest matching prefix wins; the same
/// network may be routed once per virtual network.
#[derive(Subcommand, Debug)]
pub(crate) enum IpRouteCommand {
    /// Route NETWORK (CIDR such as 10.0.0.0/8, or one address) to TUNNEL.
    Add {
        /// IPv4 or IPv6 network; host bits must be zero.
        network: String,
        /// Tunnel name or id.
        tunnel: String,
        /// Virtual network. [default: the default vnet]
        #[arg(long, value_name = "NAME")]
        vnet: Option<String>,
        /// Free text shown by `list`.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List IP routes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show which route (and tunnel) an address would take.
    Get {
        /// The address, e.g. 10.1.2.3.
        ip: std::net::IpAddr,
        /// Virtual network. [default: the default vnet]
        #[arg(long, value_name = "NAME")]
        vnet: Option<String>,
    },
    /// Remove the route of NETWORK.
    Delete {
        /// The network as routed.
        network: String,
        /// Virtual network. [default: the default vnet]
        #[arg(long, value_name = "NAME")]
        vnet: Option<String>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ClusterCommand {
    /// List the nodes: colo, tunnel endpoint, version, lease age (a node
    /// whose lease lapsed is dead: it gets no flows), connections held.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct EgressIpArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: EgressIpCommand,
}

/// Dedicated egress IPs, shared by every edge node of the store.
#[derive(Subcommand, Debug)]
pub(crate) enum EgressIpCommand {
    /// Declare IP as a dedicated egress IP of COLO.
    Add {
        /// IPv4 address.
        ip: String,
        /// The colo whose edge owns (and can bind) it, e.g. NRT.
        #[arg(long)]
        colo: String,
    },
    /// List egress IPs.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove IP.
    Delete {
        /// IPv4 address.
        ip: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct VnetArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: VnetCommand,
}

/// Every edge starts with one virtual network, `default`; clients use the
/// default one unless started with `burrow client --vnet NAME`.
#[derive(Subcommand, Debug)]
pub(crate) enum VnetCommand {
    /// Add a virtual network.
    Add {
        /// Name (letters, digits, '.', '_', '-').
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        comment: String,
        /// Make it the default for clients that name none.
        #[arg(long)]
        default: bool,
        /// A user whose devices may use it (`client --vnet NAME`);
        /// repeatable. Nobody may use a non-default vnet until allowed.
        #[arg(long = "allow-user", value_name = "EMAIL")]
        allow_users: Vec<String>,
        /// A group whose members' devices may use it; repeatable.
        #[arg(long = "allow-group", value_name = "GROUP")]
        allow_groups: Vec<String>,
    },
    /// Set who may use virtual network NAME (replaces the lists; clients
    /// no longer allowed are disconnected). The default vnet is everyone's.
    Allow {
        /// Name.
        name: String,
        /// A user whose devices may use it; repeatable.
        #[arg(long = "user", value_name = "EMAIL")]
        users: Vec<String>,
        /// A group whose members' devices may use it; repeatable.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// List virtual networks.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make NAME the default virtual network.
    Default {
        /// Name.
        name: String,
    },
    /// Delete a virtual network (not the default; delete its routes first).
    Delete {
        /// Name.
        name: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct AccessArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: AccessCommand,
}

/// Precedence: the most specific matching rule decides (ip, then
/// ip_range by prefix length, then asn, then country); at equal
/// specificity allow beats block; no match allows.
#[derive(Subcommand, Debug)]
pub(crate) enum AccessCommand {
    /// Add a rule.
    Create {
        /// allow or block.
        #[arg(long)]
        mode: String,
        /// ip, ip_range, country or asn.
        #[arg(long)]
        target: String,
        /// An IP, a CIDR range, a two-letter country code or an AS number.
        #[arg(long)]
        value: String,
    },
    /// List rules: id, mode, target, value, created (UTC).
    List {
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule.
    Delete {
        /// Rule id.
        id: String,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub(crate) struct AdminConn {
    /// Admin API base URL.
    #[arg(
        long,
        global = true,
        env = "BURROW_ADMIN_URL",
        default_value = "http://127.0.0.1:7845"
    )]
    pub(crate) admin_url: String,
    /// Admin API token. On the command line it is visible to other users
    /// (ps): prefer --admin-token-file or the environment.
    #[arg(
        long,
        global = true,
        env = "BURROW_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) admin_token: Option<String>,
    /// File holding the admin API token, e.g. edge.d/admin.token.
    #[arg(long, global = true, env = "BURROW_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct TunnelArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: TunnelCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TunnelCommand {
    /// Create a tunnel and write its credentials file.
    Create {
        /// Tunnel name (letters, digits, '-', '_', '.').
        name: String,
        /// Where to write the credentials JSON. [default: ./<tunnel-id>.json]
        #[arg(long)]
        credentials_file: Option<PathBuf>,
    },
    /// Create a tunnel that keeps the identity of one made elsewhere (a
    /// cloudflared tunnel): its id, account and secret come from its token
    /// or credentials file, so its connectors connect here unchanged (with
    /// --edge and --edge-ca). Also writes burrow credentials for it.
    ///
    /// Examples:
    ///   burrow tunnel import web --token-file web.token
    ///   burrow tunnel import web --from-credentials ~/.cloudflared/UUID.json
    #[command(verbatim_doc_comment)]
    Import {
        /// Tunnel name here (letters, digits, '-', '_', '.').
        name: String,
        /// The tunnel's token (cloudflared's or burrow's).
        #[arg(long, group = "source")]
        token: Option<String>,
        /// File holding the token.
        #[arg(long, value_name = "FILE", group = "source")]
        token_file: Option<PathBuf>,
        /// The tunnel's credentials file (cloudflared's or burrow's).
        #[arg(long, value_name = "FILE", group = "source")]
        from_credentials: Option<PathBuf>,
        /// Where to write burrow credentials for it (with this edge's
        /// address and CA). [default: ./<tunnel-id>.json]
        #[arg(long)]
        credentials_file: Option<PathBuf>,
    },
    /// List tunnels and their live connections.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one tunnel and its live connections (colo, protocol, connector,
    /// connection index, since when).
    Info {
        /// Tunnel name or id.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a tunnel and its apps.
    Delete {
        /// Tunnel name or id.
        name: String,
    },
    /// Give the tunnel a new secret and write new credentials. Connectors
    /// still on the old secret are disconnected within seconds (on every
    /// edge sharing the state) and refused when they come back.
    RotateSecret {
        /// Tunnel name or id.
        name: String,
        /// Where to write the new credentials JSON (replaced if it exists).
        /// [default: ./<tunnel-id>.json]
        #[arg(long)]
        credentials_file: Option<PathBuf>,
    },
    /// Print a tunnel's credentials file as one token string (for `tunnel
    /// run --token`). The edge keeps only a hash of the secret, so the
    /// token comes from the file `tunnel create` wrote.
    Token {
        /// Tunnel name or id.
        name: String,
        /// The tunnel's credentials file. [default: ./<tunnel-id>.json]
        #[arg(long)]
        credentials_file: Option<PathBuf>,
    },
    /// Run a connector for a tunnel.
    Run(Box<RunArgs>),
    /// Check the way to the edge: DNS SRV and A/AAAA, TCP, TLS and a QUIC
    /// handshake to each address, local port range and UDP buffers. One
    /// line per check with a verdict and a hint; exit 1 when a check fails.
    Diag {
        /// The edge domain (SRV `_v2-origintunneld._tcp.<domain>`).
        /// [default: the credentials', else burrow.internal]
        #[arg(long)]
        edge_domain: Option<String>,
        /// Edge addresses instead of the SRV record; repeat for several.
        /// [default: the credentials' edges, unless --dns-server]
        #[arg(long = "edge", value_name = "HOST:PORT")]
        edges: Vec<String>,
        /// DNS server for the lookups. [default: the system's]
        #[arg(long, value_name = "IP:PORT")]
        dns_server: Option<String>,
        /// Tunnel credentials: their edge CA verifies the certificates.
        #[arg(long)]
        credentials_file: Option<PathBuf>,
        /// The edge CA (PEM) to verify certificates with.
        #[arg(long)]
        edge_ca: Option<PathBuf>,
        /// Also probe this port on every edge address (e.g. 443 when the
        /// edge listens there too); its failures are warnings. Repeatable.
        #[arg(long = "port", value_name = "PORT")]
        ports: Vec<u16>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the connector on this host has a registered tunnel
    /// connection (its /ready answers 200), else 1 — for container health
    /// checks.
    Ready {
        /// The connector's --metrics address. [default: the first of
        /// 127.0.0.1:20241-20245 that answers]
        #[arg(long, value_name = "IP:PORT")]
        metrics: Option<String>,
    },
    /// Check ingress rules in a config.yml.
    #[command(subcommand)]
    Ingress(IngressCommand),
    /// Same as `burrow route` (cloudflared spells it `tunnel route`).
    #[command(subcommand)]
    Route(RouteCommand),
    /// Same as `burrow vnet` (cloudflared spells it `tunnel vnet`).
    #[command(subcommand)]
    Vnet(VnetCommand),
}

#[derive(Subcommand, Debug)]
pub(crate) enum IngressCommand {
    /// Validate the ingress rules of a config file; exit 64 naming the rule
    /// and field when one is wrong.
    Validate {
        /// The connector config.yml. [default: the first found where
        /// cloudflared looks, then /etc/burrow]
        #[arg(long, env = "BURROW_TUNNEL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show which ingress rule a URL (or hostname) matches.
    Rule {
        /// URL or hostname, e.g. https://ssh.example.com/path.
        url: String,
        /// The connector config.yml. [default: the first found where
        /// cloudflared looks, then /etc/burrow]
        #[arg(long, env = "BURROW_TUNNEL_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The tunnel (name or id), as cloudflared takes it: checked against
    /// the credentials; without credentials, `<ID>.json` is looked for
    /// beside the config file and in cloudflared's and burrow's
    /// directories.
    #[arg(value_name = "TUNNEL")]
    pub(crate) tunnel: Option<String>,
    /// cloudflared-style config.yml (tunnel, credentials-file, ingress, ...).
    #[arg(long, env = "BURROW_TUNNEL_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Credentials JSON written by `burrow tunnel create` (or by
    /// cloudflared: then give --edge and --edge-ca too).
    #[arg(long, alias = "cred-file", env = "TUNNEL_CRED_FILE")]
    pub(crate) credentials_file: Option<PathBuf>,
    /// The credentials JSON itself instead of a file; wins over
    /// --credentials-file.
    #[arg(long, env = "TUNNEL_CRED_CONTENTS", hide_env_values = true)]
    pub(crate) credentials_contents: Option<String>,
    /// Credentials as one token: burrow's (`burrow tunnel token NAME`) or
    /// cloudflared's (then give --edge and --edge-ca too); wins over the
    /// others. On the command line it is visible to other users (ps):
    /// prefer --token-file or the environment.
    #[arg(long, env = "TUNNEL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// File holding the token.
    #[arg(long, env = "TUNNEL_TOKEN_FILE", value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Send every flow to this one service (tcp://, http://, unix:...),
    /// instead of ingress rules. Without a scheme (localhost:8080):
    /// http://, as cloudflared.
    #[arg(long, conflicts_with = "hello_world")]
    pub(crate) url: Option<String>,
    /// Serve burrow's built-in hello-world page instead of ingress rules.
    #[arg(long)]
    pub(crate) hello_world: bool,
    /// Edge address host:port; repeat for several. [default: DNS SRV
    /// _v2-origintunneld._tcp.<edge-domain> when --dns-server is given, else
    /// the edges in the credentials file, else that SRV record]
    #[arg(long)]
    pub(crate) edge: Vec<String>,
    /// PEM file of the CA that signed the edge certificate.
    /// [default: the CA embedded in the credentials]
    #[arg(long)]
    pub(crate) edge_ca: Option<PathBuf>,
    /// Edge domain (TLS names quic.<domain>, h2.<domain>; SRV discovery).
    #[arg(long)]
    pub(crate) edge_domain: Option<String>,
    /// DNS server (IP:port) for edge discovery through SRV records.
    /// [default: the system resolver]
    #[arg(long, env = "BURROW_DNS_SERVER")]
    pub(crate) dns_server: Option<String>,
    /// IP version of edge addresses found by name: 4, 6 or auto (both,
    /// as cloudflared).
    #[arg(long, env = "TUNNEL_EDGE_IP_VERSION", default_value = "auto")]
    pub(crate) edge_ip_version: String,
    /// Transport: auto (QUIC, falling back to HTTP/2), quic or http2.
    /// [default: auto]
    #[arg(long)]
    pub(crate) protocol: Option<String>,
    /// Number of tunnel connections, spread over the edge addresses; each
    /// dials once the one before has registered (or failed, or 1 s
    /// passed). [default: 4]
    #[arg(long)]
    pub(crate) ha_connections: Option<u8>,
    /// Prometheus metrics, /ready and /healthcheck: IP:PORT, `auto` (the
    /// first free port of 127.0.0.1:20241-20245, as cloudflared) or `off`.
    /// [default: auto, or `metrics:` in the config file]
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<String>,
    /// How long open flows may finish after SIGTERM/SIGINT. [default: 30s]
    #[arg(long)]
    pub(crate) grace_period: Option<String>,
    /// In auto mode, how long the QUIC handshake may take before falling
    /// back to HTTP/2.
    #[arg(long, default_value = "4s")]
    pub(crate) quic_fallback_after: String,
    /// In auto mode, how often to try QUIC again while on HTTP/2.
    #[arg(long, default_value = "5m")]
    pub(crate) quic_retry_every: String,
    /// Registration refusals (wrong secret, unknown tunnel) per connection
    /// before giving up with a non-zero exit.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_refusals: u32,
    /// Keep retrying even when the edge refuses the credentials.
    #[arg(long)]
    pub(crate) retry_forever: bool,
    /// Origin dial timeout.
    #[arg(long, default_value = "10s")]
    pub(crate) origin_connect_timeout: String,
    /// A name for this connector, shown with its connections in `tunnel
    /// info` (cloudflared's --label). [default: none]
    #[arg(long, env = "TUNNEL_LABEL")]
    pub(crate) label: Option<String>,
    /// Require post-quantum key agreement (X25519MLKEM768) on every
    /// tunnel connection; an edge that does not offer it is refused, as
    /// a wrong secret is (--max-refusals). Without it, post-quantum is
    /// offered first with a classical fallback.
    #[arg(long, alias = "pq", env = "TUNNEL_POST_QUANTUM")]
    pub(crate) post_quantum: bool,
    /// How to reach the --url origin (cloudflared's flags; with ingress
    /// rules, set originRequest in config.yml instead).
    #[command(flatten)]
    pub(crate) origin: OriginFlags,
    /// Write this process's id to FILE at start; removed at exit.
    #[arg(long, env = "TUNNEL_PIDFILE", value_name = "FILE")]
    pub(crate) pidfile: Option<PathBuf>,
}

/// cloudflared's origin flags of `tunnel run`, for the `--url` origin
/// (the same as the originRequest keys of config.yml).
#[derive(Args, Debug, Default)]
pub(crate) struct OriginFlags {
    /// originRequest.httpHostHeader: the Host header sent to the origin.
    #[arg(long, value_name = "HOST")]
    pub(crate) http_host_header: Option<String>,
    /// originRequest.originServerName: the TLS name the origin's
    /// certificate is checked for.
    #[arg(long, value_name = "NAME")]
    pub(crate) origin_server_name: Option<String>,
    /// originRequest.caPool: CA file the origin's certificate is checked
    /// against.
    #[arg(long, value_name = "FILE")]
    pub(crate) origin_ca_pool: Option<PathBuf>,
    /// originRequest.noTLSVerify: do not verify the origin's certificate.
    #[arg(long)]
    pub(crate) no_tls_verify: bool,
    /// originRequest.disableChunkedEncoding.
    #[arg(long)]
    pub(crate) no_chunked_encoding: bool,
    /// originRequest.http2Origin: speak HTTP/2 to the origin.
    #[arg(long)]
    pub(crate) http2_origin: bool,
    /// originRequest.connectTimeout.
    #[arg(long, value_name = "DURATION")]
    pub(crate) proxy_connect_timeout: Option<String>,
    /// originRequest.tlsTimeout.
    #[arg(long, value_name = "DURATION")]
    pub(crate) proxy_tls_timeout: Option<String>,
    /// originRequest.tcpKeepAlive.
    #[arg(long, value_name = "DURATION")]
    pub(crate) proxy_tcp_keepalive: Option<String>,
    /// originRequest.keepAliveConnections.
    #[arg(long, value_name = "N")]
    pub(crate) proxy_keepalive_connections: Option<usize>,
    /// originRequest.keepAliveTimeout.
    #[arg(long, value_name = "DURATION")]
    pub(crate) proxy_keepalive_timeout: Option<String>,
    /// originRequest.noHappyEyeballs: dial the origin's addresses one
    /// after the other.
    #[arg(long)]
    pub(crate) proxy_no_happy_eyeballs: bool,
}

impl OriginFlags {
    /// Whether any flag was given.
    pub(crate) fn any(&self) -> bool {
        self.http_host_header.is_some()
            || self.origin_server_name.is_some()
            || self.origin_ca_pool.is_some()
            || self.no_tls_verify
            || self.no_chunked_encoding
            || self.http2_origin
            || self.proxy_connect_timeout.is_some()
            || self.proxy_tls_timeout.is_some()
            || self.proxy_tcp_keepalive.is_some()
            || self.proxy_keepalive_connections.is_some()
            || self.proxy_keepalive_timeout.is_some()
            || self.proxy_no_happy_eyeballs
    }
}

#[derive(Args, Debug)]
pub(crate) struct AppArgs {
    #[command(flatten)]
    pub(crate) admin: AdminConn,
    #[command(subcommand)]
    pub(crate) command: AppCommand,
}

/// `burrow app create` flags.
#[derive(Args, Debug)]
pub(crate) struct AppCreate {
    /// tcp/PORT, tcp/A-B, udp/PORT or udp/A-B (edge ports).
    #[arg(long)]
    pub(crate) protocol: Option<String>,
    /// Tunnel name or id whose connectors serve the app.
    #[arg(long, conflicts_with = "origin")]
    pub(crate) tunnel: Option<String>,
    /// Hostname the connector's ingress rules match for this app.
    #[arg(long, requires = "tunnel")]
    pub(crate) hostname: Option<String>,
    /// Direct origin tcp://IP:PORT or tcp://IP:A-B (udp://... for UDP
    /// apps; same count as the edge range, or one port); repeat to
    /// balance over several.
    #[arg(long)]
    pub(crate) origin: Vec<String>,
    /// Origin DNS name, resolved per --origin-dns-ttl (with --origin-port).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["origin", "tunnel"], requires = "origin_port")]
    pub(crate) origin_dns: Option<String>,
    /// Origin port or range for --origin-dns.
    #[arg(long, value_name = "PORT|A-B", requires = "origin_dns")]
    pub(crate) origin_port: Option<String>,
    /// Seconds between resolutions of --origin-dns. [default: 300]
    #[arg(long, value_name = "SECONDS", requires = "origin_dns")]
    pub(crate) origin_dns_ttl: Option<u32>,
    /// The DNS name clients use for the app (tls: strict verifies the
    /// origin certificate against it).
    #[arg(long, value_name = "NAME")]
    pub(crate) dns_name: Option<String>,
    /// Address families to listen on: all, ipv4 or ipv6 (from the
    /// edge's --app-ipv4-pool / --app-ipv6-pool). [default: all]
    #[arg(long)]
    pub(crate) connectivity: Option<String>,
    /// PROXY protocol header toward the origin: off, v1 or v2 (TCP).
    #[arg(long)]
    pub(crate) proxy_protocol: Option<String>,
    /// Terminate TLS at the edge (needs `burrow edge --cert-dir`): off;
    /// flexible (plain edge-origin); full (TLS to the origin, not
    /// verified); strict (TLS to the origin, verified against
    /// `burrow edge --origin-ca` or the system roots, for --dns-name).
    #[arg(long)]
    pub(crate) tls: Option<String>,
    /// Apply the IP access rules (`burrow access-rule`) to this app.
    #[arg(long)]
    pub(crate) ip_firewall: bool,
    /// The whole API body from a JSON file (other flags are ignored).
    #[arg(long, conflicts_with_all = ["protocol", "tunnel", "origin", "hostname", "proxy_protocol", "ip_firewall", "tls", "origin_dns", "dns_name", "connectivity"])]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AppCommand {
    /// Publish an edge TCP port or range, through a tunnel or to direct origins.
    ///
    /// Examples:
    ///   burrow app create --protocol tcp/2222 --tunnel web --hostname ssh.example.com
    ///   burrow app create --protocol tcp/20000-20009 --origin tcp://10.0.0.5:30000-30009
    ///   burrow app create --protocol udp/53 --origin-dns dns.internal --origin-port 53
    ///   burrow app create --protocol tcp/443 --origin tcp://10.0.0.5:443 --tls strict \
    ///       --dns-name app.example.com
    ///   burrow app create --json app.json     (the API body, Spectrum-shaped)
    #[command(verbatim_doc_comment)]
    Create(Box<AppCreate>),
    /// Replace an app with a new API body, live: connections already open
    /// (of this app and of every other) continue.
    Update {
        /// App id.
        id: String,
        /// The new API body (Spectrum-shaped JSON).
        #[arg(long)]
        json: PathBuf,
    },
    /// Show one app as JSON, with the addresses it listens on.
    Get {
        /// App id.
        id: String,
    },
    /// List apps.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an app (its port stops listening; open flows finish).
    Delete {
        /// App id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct QuickArgs {
    /// Local service to publish: tcp://host:port or http://host:port
    /// (carried as TCP).
    #[arg(
        long,
        conflicts_with = "hello_world",
        required_unless_present = "hello_world"
    )]
    pub(crate) url: Option<String>,
    /// Publish burrow's built-in hello-world page.
    #[arg(long)]
    pub(crate) hello_world: bool,
    /// Transport between the embedded connector and edge: auto, quic, http2.
    #[arg(long, default_value = "auto")]
    pub(crate) protocol: String,
    /// Loopback port for the public side (0 picks one).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
}
