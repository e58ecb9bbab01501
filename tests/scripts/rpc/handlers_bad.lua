-- The handlers of a broken instance: `version` always fails.
function version() error('instance is broken') end
