-- jitsi-xxl local run: stands in for Jitsi's mod_auth_jitsi-anonymous, which no package
-- registry carries. Plain SASL ANONYMOUS: every login gets a fresh random JID, as with
-- Jitsi's module when no token is involved. Never part of a deployed configuration.
local new_sasl = require "util.sasl".new;

local provider = {};

function provider.test_password() return nil, "password login is not offered"; end
function provider.get_password() return nil, "password login is not offered"; end
function provider.set_password() return nil, "password login is not offered"; end
function provider.user_exists() return nil; end
function provider.create_user() return nil, "accounts are not stored"; end
function provider.delete_user() return nil, "accounts are not stored"; end
function provider.users() return function() return nil; end; end

function provider.get_sasl_handler()
	return new_sasl(module.host, {
		anonymous = function() return true; end;
	});
end

module:provides("auth", provider);
