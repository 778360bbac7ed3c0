# The /docs page's OpenAPI renderer: swagger-ui-dist from npm (version locked in
# web/docs/package-lock.json), installed into the build tree by `npm ci` and copied next to the
# page in build/web/docs. No CDN at run time: dynserve serves these files itself.
# Without npm the build still succeeds; /docs then answers 404 saying the renderer is missing.
find_program(DYNSERVE_NPM npm)
set(DOCS_NPM_DIR ${CMAKE_BINARY_DIR}/docs-npm)
set(DOCS_OUT_DIR ${CMAKE_BINARY_DIR}/web/docs)
set(DOCS_DIST ${DOCS_NPM_DIR}/node_modules/swagger-ui-dist)
if(DYNSERVE_NPM)
  add_custom_command(
    OUTPUT ${DOCS_NPM_DIR}/.installed
    COMMAND ${CMAKE_COMMAND} -E make_directory ${DOCS_NPM_DIR}
    COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/web/docs/package.json
            ${CMAKE_SOURCE_DIR}/web/docs/package-lock.json ${DOCS_NPM_DIR}/
    # --ignore-scripts: a dependency's install script would only phone home for analytics
    COMMAND ${CMAKE_COMMAND} -E env SCARF_ANALYTICS=false
            ${DYNSERVE_NPM} ci --prefix ${DOCS_NPM_DIR} --ignore-scripts --no-audit --no-fund
            --loglevel=error
    COMMAND ${CMAKE_COMMAND} -E touch ${DOCS_NPM_DIR}/.installed
    DEPENDS ${CMAKE_SOURCE_DIR}/web/docs/package.json ${CMAKE_SOURCE_DIR}/web/docs/package-lock.json
    COMMENT "Installing the /docs renderer (swagger-ui-dist, npm ci)"
    VERBATIM)
  add_custom_target(docs_ui ALL
    COMMAND ${CMAKE_COMMAND} -E make_directory ${DOCS_OUT_DIR}
    COMMAND ${CMAKE_COMMAND} -E copy ${DOCS_DIST}/swagger-ui-bundle.js ${DOCS_DIST}/swagger-ui.css
            ${DOCS_DIST}/LICENSE ${DOCS_OUT_DIR}/
    DEPENDS ${DOCS_NPM_DIR}/.installed web_assets
    VERBATIM)
else()
  message(WARNING "npm not found: /docs will have no renderer (install nodejs and npm)")
endif()
