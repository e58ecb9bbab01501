function on_start() error('bad start') end
-- An error in on_start.
