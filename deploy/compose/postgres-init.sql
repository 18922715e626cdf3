-- One database per service (a service never reads another's tables), all owned by the compose user.
CREATE DATABASE registry OWNER modelyard;
CREATE DATABASE governance OWNER modelyard;
CREATE DATABASE monitor OWNER modelyard;
