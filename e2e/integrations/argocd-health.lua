-- Runs an Argo CD resource health script the way Argo CD does: the object is
-- the global `obj` (JSON nulls dropped), only the safe standard library is
-- visible, and the script returns a table {status = ..., message = ...}.
--
--   lua5.4 argocd-health.lua SCRIPT.lua OBJECT.json
--
-- prints the result as one JSON line; exits non-zero if the script fails or
-- returns something that is not a health table. Used by e2e/ship_argocd.rs.
local cjson = require("cjson")

local function read(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("a")
  file:close()
  return text
end

-- cjson turns JSON null into a sentinel; Argo CD's JSON-to-Lua conversion leaves the key out.
local function drop_nulls(value)
  if type(value) ~= "table" then
    return value
  end
  local out = {}
  for key, inner in pairs(value) do
    if inner ~= cjson.null then
      out[key] = drop_nulls(inner)
    end
  end
  return out
end

local script_path, object_path = arg[1], arg[2]
if script_path == nil or object_path == nil then
  io.stderr:write("usage: lua5.4 argocd-health.lua SCRIPT.lua OBJECT.json\n")
  os.exit(2)
end

local env = {
  obj = drop_nulls(cjson.decode(read(object_path))),
  string = string, table = table, math = math,
  ipairs = ipairs, pairs = pairs, next = next, select = select, type = type,
  tostring = tostring, tonumber = tonumber, error = error, pcall = pcall,
}
local chunk, err = load(read(script_path), "=" .. script_path, "t", env)
if chunk == nil then
  io.stderr:write("cannot load the health script: " .. err .. "\n")
  os.exit(1)
end
local ok, hs = pcall(chunk)
if not ok then
  io.stderr:write("the health script failed: " .. tostring(hs) .. "\n")
  os.exit(1)
end
local valid = {Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true}
if type(hs) ~= "table" or not valid[hs.status] then
  io.stderr:write("the health script returned no valid status: " .. cjson.encode(hs) .. "\n")
  os.exit(1)
end
print(cjson.encode({status = hs.status, message = hs.message or ""}))
