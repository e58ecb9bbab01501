function value() return 'v3' end
