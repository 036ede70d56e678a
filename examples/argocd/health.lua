-- Argo CD health check for eiam-operator.io/ApplicationClientSecret, EiamProvider and ClusterEiamProvider.
-- Install it under resource.customizations.health.eiam-operator.io_<Kind> in argocd-cm
-- (argocd-cm-patch.yaml in this folder carries this exact script for the three kinds).
--
-- Reads the kstatus conditions the operator writes, in the order kstatus itself uses:
--   status missing, or observedGeneration behind metadata.generation -> Progressing (spec not yet observed)
--   Stalled=True                                                     -> Degraded (needs a human)
--   Reconciling=True                                                 -> Progressing (issuing, retrying)
--   Ready=True                                                       -> Healthy (also during a grace period)
--   anything else                                                    -> Progressing
-- A condition whose observedGeneration is older than metadata.generation is ignored: it describes an old spec.
local hs = { status = "Progressing", message = "Waiting for eiam-operator to report status" }
if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for eiam-operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    local current = condition.observedGeneration == nil or generation == nil
      or condition.observedGeneration >= generation
    if current then
      conditions[condition.type] = condition
    end
  end
end

local function describe(condition)
  local text = condition.type .. " " .. (condition.reason or "")
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]
local ready = conditions["Ready"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready ~= nil then
  hs.message = describe(ready)
end
return hs
