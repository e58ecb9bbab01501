function value() return 'v2' end
