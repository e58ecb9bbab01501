local function fail() error("boom at the top level") end
fail()
