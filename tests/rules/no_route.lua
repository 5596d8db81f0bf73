-- Compiles but defines no route().

function rout(event, meta)
  drop()
end
