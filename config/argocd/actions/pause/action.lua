-- Hold the experiment at its current step (what kubectl cx pause writes).
-- Rollbacks on inferior evidence still happen while paused.
obj.spec.paused = true
return obj
