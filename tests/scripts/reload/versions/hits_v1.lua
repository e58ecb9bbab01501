-- State kept as `x = x or ...` survives reloads.
hits = hits or {n = 0}
function value() hits.n = hits.n + 1 return 'v1' end
