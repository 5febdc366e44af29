-- jitsi-xxl local run: stands in for Jitsi's mod_s2s_whitelist, which no package registry
-- carries. Same option, `s2s_whitelist`: stanzas to any other remote domain are refused with
-- not-allowed, and s2s streams from other domains are closed. Never part of a deployed
-- configuration.
local st = require "util.stanza";

local whitelist = module:get_option_inherited_set("s2s_whitelist", {});

module:hook("route/remote", function (event)
	if whitelist:contains(event.to_host) then return; end
	local stanza = event.stanza;
	if stanza.attr.type ~= "error" and stanza.attr.type ~= "result" then
		module:send(st.error_reply(stanza, "cancel", "not-allowed",
			"Communication with this domain is restricted"));
	end
	return true;
end, 100);

module:hook("s2s-stream-features", function (event)
	local origin = event.origin;
	if origin.from_host and not whitelist:contains(origin.from_host) then
		origin:close({ condition = "policy-violation", text = "Communication with this domain is restricted" });
	end
end, 1000);
