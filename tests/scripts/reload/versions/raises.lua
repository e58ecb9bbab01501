-- A version that compiles but raises an error when it runs.
function value() return 'v2' end
error('reload blew up')
