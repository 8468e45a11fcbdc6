-- Argo CD health of a Rapport CXExperiment (group cx.rapport.dev, kind CXExperiment).
-- Register it in argocd-cm as resource.customizations.health.cx.rapport.dev_CXExperiment
-- (docs/integrations.md#argo-cd-and-flux). Written for Argo CD's sandbox: no
-- string library, only base and table.
--
--   Pending, a step running, holding undecided  -> Progressing
--   paused, awaiting a manual promotion          -> Suspended
--   Succeeded                                    -> Healthy
--   RolledBack (every segment), Failed           -> Degraded
--   generation not yet observed                  -> Progressing
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

-- message returns the message of the first condition of types that has one.
local function message(conditions, types, fallback)
  for _, t in ipairs(types) do
    local c = condition(conditions, t)
    if c ~= nil and c.message ~= nil and c.message ~= "" then
      return c.message
    end
  end
  return fallback
end

local st = obj.status
if st == nil or st.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Rapport controller to see the experiment"
  return hs
end
local conditions = st.conditions

local generation = obj.metadata.generation
if generation ~= nil and (st.observedGeneration == nil or st.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to apply generation " .. generation
  local ready = condition(conditions, "Ready")
  if ready ~= nil and ready.status == "False" and ready.message ~= nil and ready.message ~= "" then
    hs.message = hs.message .. ": " .. ready.message
  end
  return hs
end

local phase = st.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message(conditions, {"Ready"}, "Promoted")
elseif phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message(conditions, {"Stalled", "Ready"}, phase)
elseif phase == "Paused" or st.waiting == "Paused" or st.waiting == "AwaitingPromotion" then
  hs.status = "Suspended"
  hs.message = message(conditions, {"Ready"}, "Paused")
else
  hs.status = "Progressing"
  hs.message = message(conditions, {"Reconciling", "Ready"}, "Starting")
end
return hs
