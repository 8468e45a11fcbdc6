-- Resume a paused experiment (what kubectl cx resume writes).
obj.spec.paused = false
return obj
