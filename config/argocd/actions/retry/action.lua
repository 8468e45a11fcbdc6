-- Start a new run of a RolledBack or Failed experiment (what kubectl cx retry writes).
-- The annotation's value is a token the controller acts on once: a UTC
-- timestamp, made different from the previous token if it is the same.
local os = require("os")
local key = "cx.rapport.dev/retry"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
local token = now
local n = 1
while obj.metadata.annotations[key] == token do
  token = now .. "-" .. n
  n = n + 1
end
obj.metadata.annotations[key] = token
return obj
