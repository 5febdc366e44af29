-- jitsi-xxl local run: stands in for Jitsi's mod_s2sout_override on Debian's prosody 0.12.3,
-- which lacks the `s2sout-pre-connect` event that module hooks. It reads the same option,
-- `s2sout_override` (host -> "tcp://ip:port"), and answers the s2s service lookup of those
-- hosts with that address instead of DNS. Never part of a deployed configuration.
module:set_global();

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local overrides = {};
local function collect(options)
	for host, target in pairs(options or {}) do
		local ip, port = tostring(target):match("^tcp://([^:]+):(%d+)$");
		if ip then overrides[host] = { ip = ip, port = tonumber(port) }; end
	end
end
collect(module:get_option("s2sout_override"));

local original_new = service.new;
service.new = function (hostname, srv, proto, extra)
	local target = overrides[hostname];
	if target and srv == "xmpp-server" then
		module:log("debug", "s2s to %s goes to %s:%d", hostname, target.ip, target.port);
		return basic.new(target.ip, target.port, proto, extra);
	end
	return original_new(hostname, srv, proto, extra);
end

function module.unload()
	service.new = original_new;
end
