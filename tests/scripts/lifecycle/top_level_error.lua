local function inner() error('boom at start') end
inner()
-- An error at the top level of the entry, on line 1 (tests/lifecycle.rs checks the line).
