-- Main prosody, global section. Rendered by jitsi-xxl: edit the stack, not this file.
-- Reference: https://prosody.im/doc/configure and jitsi-meet resources/extra-large-conference/.

pidfile = "/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
log = {
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
}
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/" }
certificates = "certs"
-- jicofo is an admin: mod_visitors then keeps its presence off the visitor nodes (their
-- s2s_whitelist would refuse it), and it owns every room.
admins = { "focus@auth.live.example.org" }
-- the listen backlog is a network setting; a top-level tcp_backlog is ignored
network_settings = { tcp_backlog = 511 }

modules_enabled = {
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "limits";
    -- visitors: one bidirectional s2s link per node, routed to loopback ports
    "s2s_bidi"; "certs_s2soutinjection"; "s2sout_override"; "s2s_whitelist";
}
-- s2s must stay enabled: it carries the main room to the visitor nodes.
modules_disabled = {}

-- c2s: jicofo on loopback; bridges over the private network. s2s and http: loopback only
-- (nginx terminates TLS and proxies BOSH and WebSocket).
c2s_interfaces = { "127.0.0.1"; "10.0.16.10" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = {}
s2s_interfaces = { "127.0.0.1" }
s2s_ports = { 5269 }
s2s_direct_tls_ports = {}
http_interfaces = { "127.0.0.1" }
http_ports = { 5280 }
https_ports = {}
component_interfaces = { "127.0.0.1" }
component_ports = {}

-- The visitor nodes present self-signed certificates; certs_s2soutinjection accepts them
-- for the names in s2sout_override.
s2s_secure_auth = false

limits = {
    c2s = { rate = "512kb/s"; burst = "2s" };
}
unlimited_jids = { "focus@auth.live.example.org"; "jvb@auth.live.example.org" }

-- Main prosody <-> visitor nodes, over loopback. Targets must be IP addresses.
-- s2sout_override replaces upstream's removed s2s_connect_overrides (mod_s2soutinjection).
s2sout_override = {
    ["conference.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["polls.v1.meet.jitsi"] = "tcp://127.0.0.1:52691";
    ["conference.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["polls.v2.meet.jitsi"] = "tcp://127.0.0.1:52692";
    ["conference.v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["polls.v3.meet.jitsi"] = "tcp://127.0.0.1:52693";
    ["conference.v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["polls.v4.meet.jitsi"] = "tcp://127.0.0.1:52694";
    ["conference.v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["polls.v5.meet.jitsi"] = "tcp://127.0.0.1:52695";
    ["conference.v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["polls.v6.meet.jitsi"] = "tcp://127.0.0.1:52696";
    ["conference.v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["polls.v7.meet.jitsi"] = "tcp://127.0.0.1:52697";
    ["conference.v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
    ["v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
    ["polls.v8.meet.jitsi"] = "tcp://127.0.0.1:52698";
}

-- Only the visitor nodes may use s2s with the main prosody.
s2s_whitelist = {
    "conference.v1.meet.jitsi";
    "v1.meet.jitsi";
    "polls.v1.meet.jitsi";
    "conference.v2.meet.jitsi";
    "v2.meet.jitsi";
    "polls.v2.meet.jitsi";
    "conference.v3.meet.jitsi";
    "v3.meet.jitsi";
    "polls.v3.meet.jitsi";
    "conference.v4.meet.jitsi";
    "v4.meet.jitsi";
    "polls.v4.meet.jitsi";
    "conference.v5.meet.jitsi";
    "v5.meet.jitsi";
    "polls.v5.meet.jitsi";
    "conference.v6.meet.jitsi";
    "v6.meet.jitsi";
    "polls.v6.meet.jitsi";
    "conference.v7.meet.jitsi";
    "v7.meet.jitsi";
    "polls.v7.meet.jitsi";
    "conference.v8.meet.jitsi";
    "v8.meet.jitsi";
    "polls.v8.meet.jitsi";
}

Include "conf.d/*.cfg.lua"
