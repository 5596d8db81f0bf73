-- bench/sink.lua — rules of the benchmark's forward receiver: a second
-- egoi-router that accepts the {"events":[...]} bodies the measured instance
-- forwards, and keeps nothing.
function route() drop("bench sink") end
