-- Argo CD resource actions of a Rapport CXExperiment: which apply in its
-- phase. The same rules as kubectl cx: pause and resume while it runs,
-- promote once it has started and until it ends, abort until it ends, retry
-- once it is RolledBack or Failed.
local actions = {}

local phase = "Pending"
if obj.status ~= nil and obj.status.phase ~= nil and obj.status.phase ~= "" then
  phase = obj.status.phase
end
local ended = phase == "Succeeded" or phase == "RolledBack" or phase == "Failed"
local paused = obj.spec ~= nil and obj.spec.paused == true

actions["pause"] = {["disabled"] = ended or paused, ["iconClass"] = "fa fa-fw fa-pause-circle", ["displayName"] = "Pause (spec.paused)"}
actions["resume"] = {["disabled"] = ended or not paused, ["iconClass"] = "fa fa-fw fa-play-circle", ["displayName"] = "Resume"}
actions["promote"] = {["disabled"] = not (phase == "Progressing" or phase == "Paused"), ["iconClass"] = "fa fa-fw fa-forward", ["displayName"] = "Promote now"}
actions["abort"] = {["disabled"] = ended, ["iconClass"] = "fa fa-fw fa-times-circle", ["displayName"] = "Abort: roll every variant back"}
actions["retry"] = {["disabled"] = not (phase == "RolledBack" or phase == "Failed"), ["iconClass"] = "fa fa-fw fa-redo-alt", ["displayName"] = "Retry: start a new run"}
return actions
