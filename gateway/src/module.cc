// Module gateway: placeholder translation unit until the module's sources land.
