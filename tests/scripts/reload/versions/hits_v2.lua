-- The second version of hits_v1.lua: counts on the same table.
hits = hits or {n = 0}
function value() hits.n = hits.n + 1 return 'v2 calls=' .. hits.n end
