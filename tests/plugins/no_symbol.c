/*
 * no_symbol.c - test fixture: a shared object that exports no
 * sc_plugin_entry (it exports a similarly named function instead). A host
 * must refuse it as "not a sectorcast plugin".
 */
#include <stdint.h>
#include <sectorcast/plugin.h>

SC_PLUGIN_EXPORT int sc_plugin_entry_missing(uint32_t host_abi);

SC_PLUGIN_EXPORT int
sc_plugin_entry_missing(uint32_t host_abi)
{
    return (int)host_abi;
}
