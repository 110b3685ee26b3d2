#include "broker.h"
int broker_run(broker_config *c) { broker_config_free(&c); return 0; }
