function value() return 'v1' end
