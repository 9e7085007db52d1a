// Module sim: placeholder translation unit until the module's sources land.
